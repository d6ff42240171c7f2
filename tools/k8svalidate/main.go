// Command k8svalidate checks rendered Kubernetes manifests (for example `helm template`
// output) against the official Kubernetes Go API types, offline.
//
// Every YAML document is converted to JSON (duplicate keys rejected) and decoded strictly,
// case-sensitively, into the Go type the API server itself uses for its apiVersion and kind
// (k8s.io/api, and the Prometheus Operator's monitoring/v1 types for ServiceMonitor and
// PodMonitor): an unknown or misspelt field, a duplicate field, a wrong type (a string where
// an integer belongs), or an unparsable quantity is an error. A kind this program does not
// know is an error too, so nothing passes unchecked. KEDA's ScaledObject and
// TriggerAuthentication are decoded into local structs that mirror KEDA's v1alpha1 API.
//
// Then a set of semantic checks that the API server or kubelet would apply, taken from the
// API conventions: metadata names and labels (k8s.io/apimachinery validation), selectors
// matching pod template labels, volume mounts naming declared volumes, probe ports naming
// container ports, env var sources, requests not above limits, HPA bounds, PDB fields, and
// cross-object references within the rendered set (a Service, PDB, HPA, ScaledObject,
// ServiceMonitor or PodMonitor must select or target something that was rendered).
//
// Usage: k8svalidate [-q] [-no-cross-refs] [-dump OUT.json] FILE... ("-" reads standard
// input). Prints one line per object and exits 1 if any object is invalid. -dump writes the
// documents as a JSON array, so that tests can inspect them without a YAML library.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"

	"sigs.k8s.io/yaml"
)

func main() {
	noCross := flag.Bool("no-cross-refs", false, "skip checks between objects of the input")
	quiet := flag.Bool("q", false, "print only errors")
	dump := flag.String("dump", "", "also write every document, converted to JSON, as one JSON array to this file")
	flag.Parse()
	files := flag.Args()
	if len(files) == 0 {
		files = []string{"-"}
	}
	var objs []*object
	var docsJSON []json.RawMessage
	failed := false
	for _, name := range files {
		data, err := readInput(name)
		if err != nil {
			fmt.Fprintf(os.Stderr, "k8svalidate: %v\n", err)
			os.Exit(2)
		}
		for i, doc := range splitYAML(data) {
			if js, err := yaml.YAMLToJSON(doc); err == nil && string(js) != "null" {
				docsJSON = append(docsJSON, js)
			}
			obj, err := decode(doc)
			where := fmt.Sprintf("%s: document %d", name, i+1)
			if obj != nil {
				where += " (" + obj.id() + ")"
			}
			if err != nil {
				fmt.Printf("INVALID %s: %v\n", where, err)
				failed = true
				continue
			}
			if obj == nil {
				continue // an empty document
			}
			obj.where = where
			if errs := obj.validate(); len(errs) > 0 {
				for _, e := range errs {
					fmt.Printf("INVALID %s: %v\n", where, e)
				}
				failed = true
				continue
			}
			objs = append(objs, obj)
		}
	}
	if *dump != "" {
		out, err := json.Marshal(docsJSON)
		if err == nil {
			err = os.WriteFile(*dump, out, 0o644)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "k8svalidate: -dump: %v\n", err)
			os.Exit(2)
		}
	}
	if !*noCross {
		for _, e := range crossCheck(objs) {
			fmt.Printf("INVALID %v\n", e)
			failed = true
		}
	}
	if !*quiet {
		for _, o := range objs {
			fmt.Printf("ok %s\n", o.id())
		}
	}
	if failed {
		os.Exit(1)
	}
	if len(objs) == 0 {
		fmt.Println("k8svalidate: no objects in the input")
		os.Exit(1)
	}
	fmt.Printf("k8svalidate: %d objects valid\n", len(objs))
}

func readInput(name string) ([]byte, error) {
	if name == "-" {
		return io.ReadAll(bufio.NewReader(os.Stdin))
	}
	return os.ReadFile(name)
}

var docSep = regexp.MustCompile(`(?m)^---[ \t]*(#.*)?$`)

// splitYAML splits a YAML stream on document separators and drops documents that hold only
// comments or whitespace (helm emits those for templates that rendered nothing).
func splitYAML(data []byte) [][]byte {
	var docs [][]byte
	for _, part := range docSep.Split(string(data), -1) {
		if hasContent(part) {
			docs = append(docs, []byte(part))
		}
	}
	return docs
}

func hasContent(doc string) bool {
	for _, line := range strings.Split(doc, "\n") {
		t := strings.TrimSpace(line)
		if t != "" && !strings.HasPrefix(t, "#") {
			return true
		}
	}
	return false
}

func firstLine(b []byte) string {
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		return string(b[:i])
	}
	return string(b)
}
