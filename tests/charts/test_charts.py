"""The Helm charts: lint, render with several value sets, validate every rendered object against
the Kubernetes API (two independent validators), and assert the properties the charts promise.

Tools come from scripts/install-helm.sh (helm, kubeconform, k8svalidate, the Kubernetes JSON
schemas) into .tools/; the session fixture runs it (idempotent: seconds when up to date, a few
minutes the first time on a fresh machine). If the tools cannot be installed the tests FAIL.

Validators:
- k8svalidate (tools/k8svalidate): strict, case-sensitive decoding of each object into the
  official k8s.io/api Go types (Prometheus Operator types for ServiceMonitor/PodMonitor, a
  mirror of KEDA's v1alpha1 types for ScaledObject/TriggerAuthentication) plus semantic and
  cross-object checks.
- kubeconform -strict against the Kubernetes JSON schemas for the oldest supported (1.25) and
  the newest (1.37) Kubernetes version, for the built-in kinds.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from logferry.config import Config, load_config
from logferry.config._agent_sources import (
    ContainerLogSettings,
    MultilineSettings,
    PodMetadataSettings,
)

ROOT = Path(__file__).resolve().parents[2]
TOOLS = Path(os.environ.get("LOGFERRY_TOOLS_DIR", ROOT / ".tools"))
AGENT = ROOT / "charts" / "logferry-agent"
INDEXER = ROOT / "charts" / "logferry-indexer"
KUBE_VERSIONS = ("1.25.0", "1.37.0")
CRD_KINDS = "ServiceMonitor,PodMonitor,ScaledObject,TriggerAuthentication"

# A cold build of helm + kubeconform + k8svalidate takes ~5 minutes on 2 cores.
pytestmark = pytest.mark.timeout(1800)


@dataclass(frozen=True)
class Tools:
    helm: Path
    kubeconform: Path
    k8svalidate: Path
    schemas: Path


@pytest.fixture(scope="session")
def tools() -> Tools:
    script = ROOT / "scripts" / "install-helm.sh"
    proc = subprocess.run(["bash", str(script)], capture_output=True, text=True, check=False,
                          env={**os.environ, "LOGFERRY_TOOLS_DIR": str(TOOLS)})
    if proc.returncode != 0:
        pytest.fail(f"scripts/install-helm.sh failed (exit {proc.returncode}); the chart tests "
                    f"need helm, kubeconform and k8svalidate:\n{proc.stderr[-4000:]}")
    found = Tools(TOOLS / "bin" / "helm", TOOLS / "bin" / "kubeconform",
                  TOOLS / "bin" / "k8svalidate", TOOLS / "k8s-schemas")
    for path in (found.helm, found.kubeconform, found.k8svalidate):
        assert os.access(path, os.X_OK), f"{path} missing after scripts/install-helm.sh"
    for version in KUBE_VERSIONS:
        assert (found.schemas / f"v{version}-standalone-strict").is_dir(), version
    return found


def run(cmd: list[str | Path], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, check=False,
                          **kwargs)


@dataclass
class Rendered:
    yaml: str
    objects: list[dict[str, Any]]

    def all(self, kind: str) -> list[dict[str, Any]]:
        return [o for o in self.objects if o["kind"] == kind]

    def one(self, kind: str, suffix: str = "") -> dict[str, Any]:
        found = [o for o in self.all(kind) if o["metadata"]["name"].endswith(suffix)]
        assert len(found) == 1, f"expected one {kind}*{suffix}, got {len(found)}"
        return found[0]

    def has(self, kind: str) -> bool:
        return bool(self.all(kind))

    def config(self) -> dict[str, Any]:
        cm = [c for c in self.all("ConfigMap") if "config.json" in c.get("data", {})]
        assert len(cm) == 1
        result: dict[str, Any] = json.loads(cm[0]["data"]["config.json"])
        return result


def helm_template(tools: Tools, chart: Path, values: dict[str, Any], tmp_path: Path,
                  release: str = "lf") -> subprocess.CompletedProcess[str]:
    vfile = tmp_path / f"values-{len(list(tmp_path.iterdir()))}.json"  # JSON is YAML
    vfile.write_text(json.dumps(values))
    return run([tools.helm, "template", release, chart, "--namespace", "logging",
                "-f", vfile])


def render(tools: Tools, chart: Path, values: dict[str, Any], tmp_path: Path) -> Rendered:
    proc = helm_template(tools, chart, values, tmp_path)
    assert proc.returncode == 0, f"helm template failed:\n{proc.stderr}"
    out = tmp_path / "rendered.yaml"
    out.write_text(proc.stdout)
    dump = tmp_path / "rendered.json"
    check = run([tools.k8svalidate, "-q", "-dump", dump, out])
    assert check.returncode == 0, f"k8svalidate rejected the manifests:\n{check.stdout}"
    return Rendered(proc.stdout, json.loads(dump.read_text()))


def kubeconform(tools: Tools, manifest: Path, version: str) -> subprocess.CompletedProcess[str]:
    location = (f"{tools.schemas}/{{{{.NormalizedKubernetesVersion}}}}-standalone"
                f"{{{{.StrictSuffix}}}}/{{{{.ResourceKind}}}}{{{{.KindSuffix}}}}.json")
    return run([tools.kubeconform, "-strict", "-summary", "-kubernetes-version", version,
                "-schema-location", location, "-skip", CRD_KINDS, manifest])


# -- value sets ------------------------------------------------------------------------------

TLS_SASL: dict[str, Any] = {"kafka": {
    "brokers": ["kafka-0.kafka:9093", "kafka-1.kafka:9093"],
    "tls": {"enabled": True, "existingSecret": "kafka-tls", "caKey": "ca.crt",
            "certKey": "tls.crt", "keyKey": "tls.key"},
    "sasl": {"enabled": True, "mechanism": "SCRAM-SHA-512", "username": "logferry",
             "existingSecret": "kafka-user", "passwordKey": "password"},
}}
MONITORS: dict[str, Any] = {"metrics": {"podMonitor": {"enabled": True},
                                        "serviceMonitor": {"enabled": True}}}

AGENT_CASES: dict[str, dict[str, Any]] = {
    "defaults": {},
    "metadata-off": {"kubernetesMetadata": {"enabled": False}},
    "tls-sasl": TLS_SASL,
    "monitors": MONITORS,
    "tuned": {"agent": {"exclude": ["/var/log/pods/logging_*/*/*.log"], "startAt": "end",
                        "maxLineBytes": 262144, "compression": "none",
                        "lingerSeconds": 0.05, "maxInflightBytes": 134217728},
              "extraHostPaths": ["/var/lib/docker/containers"],
              "image": {"digest": "sha256:" + "ab" * 32},
              "priorityClassName": "", "logLevel": "debug"},
    "containers-tuned": {
        "containers": {
            "format": "cri", "partialTimeoutSeconds": 2.5, "partialMaxBytes": 65536,
            "includeNamespaces": ["team-*", "shop"], "excludeNamespaces": ["team-sandbox"],
            "excludeAnnotation": "example.com/no-logs",
            "multiline": {"mode": "start_pattern", "startPattern": r"\d{4}-\d{2}-\d{2}[T ]",
                          "maxLines": 200, "maxBytes": 65536, "timeoutSeconds": 0.5}},
        "agent": {"include": ["/var/log/syslog", "/var/log/nginx/*.log"],
                  "multiline": {"mode": "indent", "maxLines": 50}},
        "kubernetesMetadata": {"enabled": True, "includePodLabels": {"team": "payments"},
                               "excludePodLabels": {"logging": "off"},
                               "waitForPodSeconds": 0.5},
    },
    "files-only": {"containers": {"enabled": False},
                   "agent": {"include": ["/var/log/syslog"],
                             "multiline": {"mode": False}}},  # YAML's unquoted off
    "custom-root": {"containers": {"root": "/data/kubelet/pods"}},
}
OS_AUTH: dict[str, Any] = {"opensearch": {
    "urls": ["https://os-0:9200", "https://os-1:9200"], "username": "logferry",
    "existingSecret": "os-user", "tls": {"existingSecret": "os-ca", "caKey": "ca.crt"}}}
INDEXER_CASES: dict[str, dict[str, Any]] = {
    "defaults": {},
    "tls-sasl": {**TLS_SASL, **OS_AUTH},
    "hpa": {"autoscaling": {"hpa": {"enabled": True, "maxReplicas": 50}},
            "kafka": {"partitions": 12}},
    "keda": {"autoscaling": {"keda": {"enabled": True, "maxReplicaCount": 100}},
             "kafka": {"partitions": 8}},
    "keda-tls-sasl": {**TLS_SASL, "autoscaling": {"keda": {"enabled": True}},
                      "indexer": {"topics": ["logs.a", "logs.b"]}},
    "monitors-dashboards": {**MONITORS, "dashboards": {"import": {
        "enabled": True, "url": "https://dashboards:5601", "username": "admin",
        "existingSecret": "osd-admin", "caSecret": "osd-ca"}},
        "podDisruptionBudget": {"maxUnavailable": None, "minAvailable": 1}},
}


# -- lint and validation ---------------------------------------------------------------------

@pytest.mark.parametrize("chart", [AGENT, INDEXER], ids=lambda c: c.name)
def test_helm_lint_strict(tools: Tools, chart: Path) -> None:
    proc = run([tools.helm, "lint", "--strict", chart])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 chart(s) failed" in proc.stdout


@pytest.mark.parametrize(("chart", "case"),
                         [(AGENT, c) for c in AGENT_CASES] + [(INDEXER, c) for c in INDEXER_CASES],
                         ids=lambda x: x.name if isinstance(x, Path) else x)
def test_rendered_manifests_are_valid(tools: Tools, tmp_path: Path, chart: Path,
                                      case: str) -> None:
    values = (AGENT_CASES if chart == AGENT else INDEXER_CASES)[case]
    rendered = render(tools, chart, values, tmp_path)  # k8svalidate ran inside
    manifest = tmp_path / "rendered.yaml"
    for version in KUBE_VERSIONS:
        proc = kubeconform(tools, manifest, version)
        assert proc.returncode == 0, f"kubeconform (Kubernetes {version}):\n{proc.stdout}"
        assert "Invalid: 0, Errors: 0" in proc.stdout
    # The rendered logferry config must load with logferry's own (strict) config model.
    config_file = tmp_path / "config.json"
    config_file.write_text(json.dumps(rendered.config()))
    load_config(config_file)


def test_validators_reject_broken_manifests(tools: Tools, tmp_path: Path) -> None:
    """Guard against a vacuous validator: known mistakes must fail both."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("""\
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: x}
spec:
  selector: {matchLabels: {app: x}}
  template:
    metadata: {labels: {app: x}}
    spec:
      containers:
        - name: c
          image: i
          securityContext: {readOnlyRootFileSystem: true}
---
apiVersion: v1
kind: Pod
metadata: {name: y}
spec:
  containers:
    - name: c
      image: i
      resources: {limits: {memory: 10MB}}
""")
    proc = run([tools.k8svalidate, bad])
    assert proc.returncode == 1
    assert 'unknown field "spec.template.spec.containers[0].securityContext.' \
           'readOnlyRootFileSystem"' in proc.stdout, proc.stdout
    assert "quantities must match" in proc.stdout, proc.stdout
    assert kubeconform(tools, bad, KUBE_VERSIONS[0]).returncode == 1

    wrong_ref = tmp_path / "wrong-ref.yaml"
    wrong_ref.write_text("""\
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: x}
spec:
  maxUnavailable: 1
  selector: {matchLabels: {app: nothing}}
""")
    proc = run([tools.k8svalidate, wrong_ref])
    assert proc.returncode == 1 and "selects no pod template" in proc.stdout


# -- documentation -----------------------------------------------------------------------------

def _value_paths(schema: dict[str, Any], defs: dict[str, Any], prefix: str = "") -> list[str]:
    """Every settable key of a chart: objects the schema closes are walked, anything else
    (free-form maps, Kubernetes objects such as resources) is one value."""
    ref = schema.get("$ref", "")
    if ref:
        if ref.endswith("/resources"):
            return [prefix[:-1]]
        schema = defs[ref.rsplit("/", 1)[1]]
    props = schema.get("properties")
    if not props or schema.get("additionalProperties") is not False:
        return [prefix[:-1]]
    return [path for key, sub in props.items() if prefix or key != "global"
            for path in _value_paths(sub, defs, f"{prefix}{key}.")]


@pytest.mark.parametrize("chart", [AGENT, INDEXER], ids=lambda c: c.name)
def test_every_value_is_documented(chart: Path) -> None:
    """Each value has a row in the README's tables: `a.b.c`, or `a.b.x` / `c` in one row."""
    schema = json.loads((chart / "values.schema.json").read_text())
    rows = [line for line in (chart / "README.md").read_text().splitlines()
            if line.startswith("| `")]
    missing = []
    for path in _value_paths(schema, schema.get("definitions", {})):
        parent, _, leaf = path.rpartition(".")
        if not any(f"`{path}`" in row or (f"`{parent}." in row and f"`{leaf}`" in row)
                   or (not parent and f"`{leaf}`" in row) for row in rows):
            missing.append(path)
    assert not missing, f"values without a row in {chart.name}/README.md: {missing}"


# -- schema: wrong values fail at install time --------------------------------------------------

@pytest.mark.parametrize(("chart", "values", "message"), [
    (INDEXER, {"replicaCount": "two"}, "/replicaCount"),
    (INDEXER, {"replicas": 2}, "additional properties 'replicas' not allowed"),
    (INDEXER, {"kafka": {"tls": {"enabeld": True}}}, "'enabeld' not allowed"),
    (INDEXER, {"kafka": {"brokers": ["no-port"]}}, "/kafka/brokers/0"),
    (INDEXER, {"kafka": {"sasl": {"enabled": True, "mechanism": "GSSAPI",
                                  "username": "u", "existingSecret": "s"}}}, "mechanism"),
    (INDEXER, {"opensearch": {"urls": ["opensearch:9200"]}}, "/opensearch/urls/0"),
    (INDEXER, {"opensearch": {"username": "u"}}, "existingSecret"),
    (AGENT, {"kafka": {"sasl": {"enabled": True}}}, "/kafka/sasl"),
    (AGENT, {"agent": {"startAt": "middle"}}, "/agent/startAt"),
    (AGENT, {"replicaCount": 2}, "additional properties 'replicaCount' not allowed"),
    (AGENT, {"state": {"hostPath": "relative/dir"}}, "/state/hostPath"),
    (AGENT, {"containers": {"format": "json"}}, "/containers/format"),
    (AGENT, {"containers": {"enabeld": False}}, "additional properties 'enabeld' not allowed"),
    (AGENT, {"containers": {"root": "var/log/pods"}}, "/containers/root"),
    (AGENT, {"containers": {"partialMaxBytes": 4096}}, "/containers/partialMaxBytes"),
    (AGENT, {"containers": {"partialTimeoutSeconds": 0}}, "/containers/partialTimeoutSeconds"),
    (AGENT, {"containers": {"excludeNamespaces": ["Kube-System"]}},
     "/containers/excludeNamespaces/0"),
    (AGENT, {"containers": {"includeNamespaces": [""]}}, "/containers/includeNamespaces/0"),
    (AGENT, {"containers": {"multiline": {"mode": "regex"}}}, "/containers/multiline/mode"),
    (AGENT, {"containers": {"multiline": {"mode": "start_pattern"}}},
     "/containers/multiline/startPattern"),
    (AGENT, {"agent": {"multiline": {"mode": "indent", "startPattern": "x"}}},
     "/agent/multiline/startPattern"),
    (AGENT, {"agent": {"multiline": {"maxLines": 0}}}, "/agent/multiline/maxLines"),
    (AGENT, {"agent": {"include": ["relative/*.log"]}}, "/agent/include/0"),
    (AGENT, {"kubernetesMetadata": {"includePodLabels": {"team": 1}}},
     "/kubernetesMetadata/includePodLabels/team"),
    # (helm's validator reports a wrong location for propertyNames; the reason is right)
    (AGENT, {"kubernetesMetadata": {"excludePodLabels": {"": "x"}}}, "invalid propertyName ''"),
    (AGENT, {"kubernetesMetadata": {"waitForPodSeconds": -1}},
     "/kubernetesMetadata/waitForPodSeconds"),
], ids=lambda x: x.name if isinstance(x, Path) else None)
def test_wrong_values_fail_on_schema(tools: Tools, tmp_path: Path, chart: Path,
                                     values: dict[str, Any], message: str) -> None:
    proc = helm_template(tools, chart, values, tmp_path)
    assert proc.returncode != 0
    assert "values don't meet the specifications of the schema" in proc.stderr, proc.stderr
    assert message in proc.stderr, proc.stderr


@pytest.mark.parametrize(("values", "message"), [
    ({"autoscaling": {"hpa": {"enabled": True}, "keda": {"enabled": True}}},
     "enable at most one of hpa and keda"),
    ({"podDisruptionBudget": {"maxUnavailable": 1, "minAvailable": 1}}, "exactly one"),
    ({"kafka": {"partitions": 2}, "autoscaling": {"hpa": {"enabled": True, "minReplicas": 3}}},
     "exceeds maxReplicas capped at kafka.partitions"),
])
def test_inconsistent_values_fail_at_render(tools: Tools, tmp_path: Path,
                                            values: dict[str, Any], message: str) -> None:
    proc = helm_template(tools, INDEXER, values, tmp_path)
    assert proc.returncode != 0
    assert message in proc.stderr, proc.stderr


@pytest.mark.parametrize(("values", "message"), [
    ({"containers": {"enabled": False}},
     "nothing to read: containers.enabled is false and agent.include is empty"),
    # The chart's former default: with the container source on, lines would be read twice.
    ({"agent": {"include": ["/var/log/pods/*/*/*.log"]}}, "would be shipped twice"),
    ({"agent": {"include": ["/var/log/syslog", "/var/log/**"]}}, 'agent.include "/var/log/**"'),
    ({"agent": {"include": ["/var/log/*/*/*/*.log"]}}, "would be shipped twice"),
    ({"agent": {"include": ["/var/log/pods/shop_web-1_u/app/0.log"]}}, "would be shipped twice"),
    ({"containers": {"root": "/data/pods"}, "agent": {"include": ["/data/pods/*/*/*.log*"]}},
     "reads files under containers.root /data/pods"),
    ({"kubernetesMetadata": {"enabled": False, "excludePodLabels": {"logging": "off"}}},
     "excludePodLabels need kubernetesMetadata.enabled"),
])
def test_agent_inconsistent_values_fail_at_render(tools: Tools, tmp_path: Path,
                                                  values: dict[str, Any], message: str) -> None:
    proc = helm_template(tools, AGENT, values, tmp_path)
    assert proc.returncode != 0
    assert "values don't meet the specifications of the schema" not in proc.stderr
    assert message in proc.stderr, proc.stderr


# -- agent -------------------------------------------------------------------------------------

Render = Callable[[dict[str, Any]], Rendered]


@pytest.fixture
def agent(tools: Tools, tmp_path_factory: pytest.TempPathFactory) -> Render:
    return lambda values: render(tools, AGENT, values, tmp_path_factory.mktemp("agent"))


@pytest.fixture
def indexer(tools: Tools, tmp_path_factory: pytest.TempPathFactory) -> Render:
    return lambda values: render(tools, INDEXER, values, tmp_path_factory.mktemp("indexer"))


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = workload["spec"]["template"]["spec"]
    return spec


def container(workload: dict[str, Any]) -> dict[str, Any]:
    (c,) = pod_spec(workload)["containers"]
    result: dict[str, Any] = c
    return result


def env(workload: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container(workload)["env"]}


def volumes(workload: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in pod_spec(workload)["volumes"]}


def mounts(workload: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {m["name"]: m for m in container(workload)["volumeMounts"]}


def test_agent_daemonset_security(agent: Render) -> None:
    ds = agent({}).one("DaemonSet")
    sc = container(ds)["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["privileged"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod_spec(ds)["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    # Root only because kubelet's log files are root-only; the reason is written next to it.
    assert sc["runAsUser"] == 0
    values = (AGENT / "values.yaml").read_text()
    assert "kubelet writes\n# container log files as root with mode 0640" in values
    assert "runAsUser 0: kubelet's log files" in (AGENT / "templates/daemonset.yaml").read_text()


def test_agent_host_paths(agent: Render) -> None:
    ds = agent({"extraHostPaths": ["/var/lib/docker/containers"]}).one("DaemonSet")
    vols, mnts = volumes(ds), mounts(ds)
    assert vols["varlog"]["hostPath"] == {"path": "/var/log", "type": "Directory"}
    assert mnts["varlog"] == {"name": "varlog", "mountPath": "/var/log", "readOnly": True}
    assert vols["state"]["hostPath"] == {"path": "/var/lib/logferry-agent",
                                         "type": "DirectoryOrCreate"}
    assert not mnts["state"].get("readOnly", False)
    assert vols["extra-host-0"]["hostPath"]["path"] == "/var/lib/docker/containers"
    assert mnts["extra-host-0"]["readOnly"] is True
    assert "emptyDir" in vols["tmp"]
    # Every host path except the checkpoint directory is read-only.
    writable = [m["name"] for m in mnts.values()
                if "hostPath" in vols[m["name"]] and not m.get("readOnly")]
    assert writable == ["state"]


def _load(config: dict[str, Any], tmp_path: Path) -> Config:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    return load_config(path)


def test_agent_config(agent: Render, tmp_path: Path) -> None:
    rendered = agent({})
    config = rendered.config()
    # Container logs come from the container source; no plain files unless asked for.
    assert config["agent"]["include"] == []
    assert config["agent"]["containers"] == {
        "enabled": True, "root": "/var/log/pods", "format": "auto", "include_namespaces": [],
        "exclude_namespaces": [], "exclude_annotation": "logferry.io/exclude",
        "multiline": {"mode": "off"},
        "metadata": {"enabled": True, "include_pod_labels": {}, "exclude_pod_labels": {}}}
    assert config["agent"]["multiline"] == {"mode": "off"}
    # Apart from switching them on, the chart's defaults are logferry's own.
    loaded = _load(config, tmp_path)
    assert loaded.agent.containers == ContainerLogSettings(
        enabled=True, metadata=PodMetadataSettings(enabled=True))
    # Metadata off: no API access, and the agent does not try.
    off = agent({"kubernetesMetadata": {"enabled": False}}).config()
    assert off["agent"]["containers"]["metadata"] == {"enabled": False}
    assert loaded.agent.multiline == MultilineSettings()
    assert config["agent"]["metrics_port"] == 9464
    state_mount = mounts(rendered.one("DaemonSet"))["state"]["mountPath"]
    assert config["agent"]["state_dir"] == state_mount
    ds = rendered.one("DaemonSet")
    args = container(ds)["args"]
    assert args[:2] == ["agent", "run"]
    config_path = args[args.index("--config") + 1]
    assert config_path.startswith(mounts(ds)["config"]["mountPath"] + "/")


def test_agent_container_and_multiline_values(agent: Render, tmp_path: Path) -> None:
    config = agent(AGENT_CASES["containers-tuned"]).config()
    metadata = config["agent"]["containers"].pop("metadata")
    assert config["agent"]["containers"] == {
        "enabled": True, "root": "/var/log/pods", "format": "cri", "partial_timeout_s": 2.5,
        "partial_max_bytes": 65536, "include_namespaces": ["team-*", "shop"],
        "exclude_namespaces": ["team-sandbox"], "exclude_annotation": "example.com/no-logs",
        "multiline": {"mode": "start_pattern", "start_pattern": r"\d{4}-\d{2}-\d{2}[T ]",
                      "max_lines": 200, "max_bytes": 65536, "timeout_s": 0.5}}
    assert config["agent"]["include"] == ["/var/log/syslog", "/var/log/nginx/*.log"]
    assert config["agent"]["multiline"] == {"mode": "indent", "max_lines": 50}
    assert metadata == {
        "enabled": True, "include_pod_labels": {"team": "payments"},
        "exclude_pod_labels": {"logging": "off"}, "wait_for_pod_s": 0.5}
    config["agent"]["containers"]["metadata"] = metadata
    loaded = _load(config, tmp_path).agent
    assert loaded.containers.partial_timeout_s == 2.5
    assert loaded.containers.multiline.start_pattern == r"\d{4}-\d{2}-\d{2}[T ]"
    assert loaded.containers.exclude_namespaces == ["team-sandbox"]
    assert loaded.multiline.mode == "indent" and loaded.multiline.max_lines == 50
    assert loaded.multiline.max_bytes == MultilineSettings().max_bytes  # null: the default
    assert loaded.containers.metadata.exclude_pod_labels == {"logging": "off"}
    assert loaded.containers.metadata.wait_for_pod_s == 0.5

    files = agent(AGENT_CASES["files-only"]).config()["agent"]
    assert files["containers"]["enabled"] is False
    assert files["include"] == ["/var/log/syslog"]
    assert files["multiline"] == {"mode": "off"}  # an unquoted YAML off is false
    assert files["containers"]["metadata"] == {"enabled": False}  # no container source


def test_agent_containers_root_mount(agent: Render) -> None:
    ds = agent(AGENT_CASES["custom-root"]).one("DaemonSet")
    assert volumes(ds)["containers-root"]["hostPath"] == {"path": "/data/kubelet/pods",
                                                          "type": "Directory"}
    assert mounts(ds)["containers-root"] == {"name": "containers-root",
                                             "mountPath": "/data/kubelet/pods",
                                             "readOnly": True}
    # Under the /var/log mount, or already in extraHostPaths: no second mount.
    assert "containers-root" not in volumes(agent({}).one("DaemonSet"))
    both = agent({"containers": {"root": "/data/pods"},
                  "extraHostPaths": ["/data/pods"]}).one("DaemonSet")
    assert "containers-root" not in volumes(both)
    assert [m["mountPath"] for m in mounts(both).values()].count("/data/pods") == 1
    off = agent({"containers": {"enabled": False, "root": "/data/pods"},
                 "agent": {"include": ["/var/log/syslog"]}}).one("DaemonSet")
    assert "containers-root" not in volumes(off)


def test_agent_node_name_and_probes(agent: Render) -> None:
    ds = agent({}).one("DaemonSet")
    assert env(ds)["NODE_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "spec.nodeName"}}
    c = container(ds)
    assert c["ports"] == [{"name": "metrics", "containerPort": 9464, "protocol": "TCP"}]
    for probe in ("livenessProbe", "readinessProbe"):
        assert c[probe]["httpGet"] == {"path": "/health", "port": "metrics"}
    assert c["resources"]["limits"]["memory"] and c["resources"]["requests"]["cpu"]


def test_agent_scheduling(agent: Render) -> None:
    ds = agent({}).one("DaemonSet")
    spec = pod_spec(ds)
    assert spec["tolerations"] == [{"operator": "Exists"}]
    assert spec["priorityClassName"] == "system-node-critical"
    assert ds["spec"]["updateStrategy"] == {
        "type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}
    assert agent({"updateStrategy": {"type": "RollingUpdate", "maxUnavailable": "20%"}}).one(
        "DaemonSet")["spec"]["updateStrategy"]["rollingUpdate"]["maxUnavailable"] == "20%"
    assert "priorityClassName" not in pod_spec(agent({"priorityClassName": ""}).one("DaemonSet"))


def test_agent_rbac_only_with_metadata(agent: Render) -> None:
    on = agent({})
    role = on.one("ClusterRole")
    assert role["rules"] == [{"apiGroups": [""], "resources": ["pods", "namespaces"],
                              "verbs": ["get", "list", "watch"]}]
    binding = on.one("ClusterRoleBinding")
    sa = on.one("ServiceAccount")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": sa["metadata"]["name"],
                                    "namespace": "logging"}]
    assert pod_spec(on.one("DaemonSet"))["automountServiceAccountToken"] is True

    off = agent({"kubernetesMetadata": {"enabled": False}})
    assert not off.has("ClusterRole") and not off.has("ClusterRoleBinding")
    assert pod_spec(off.one("DaemonSet"))["automountServiceAccountToken"] is False
    assert off.one("ServiceAccount")["automountServiceAccountToken"] is False


def checksum(workload: dict[str, Any]) -> str:
    value: str = workload["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
    return value


def test_agent_checksum_follows_config(agent: Render) -> None:
    base = checksum(agent({}).one("DaemonSet"))
    assert len(base) == 64
    assert checksum(agent({}).one("DaemonSet")) == base
    assert checksum(agent({"kafka": {"topic": "other.logs"}}).one("DaemonSet")) != base
    assert checksum(agent({"agent": {"startAt": "end"}}).one("DaemonSet")) != base
    assert checksum(agent({"containers": {"excludeNamespaces": ["x"]}}).one("DaemonSet")) != base
    # Values that do not reach the config file do not roll the pods.
    assert checksum(agent({"podLabels": {"team": "x"}}).one("DaemonSet")) == base


def test_agent_tls_sasl(agent: Render) -> None:
    rendered = agent(TLS_SASL)
    ds = rendered.one("DaemonSet")
    assert env(ds)["LOGFERRY_KAFKA_SASL_PASSWORD"]["valueFrom"] == {
        "secretKeyRef": {"name": "kafka-user", "key": "password"}}
    assert volumes(ds)["kafka-tls"]["secret"]["secretName"] == "kafka-tls"
    tls_dir = mounts(ds)["kafka-tls"]["mountPath"]
    assert mounts(ds)["kafka-tls"]["readOnly"] is True
    kafka = rendered.config()["kafka"]
    assert kafka["security_protocol"] == "SASL_SSL"
    assert kafka["sasl_mechanism"] == "SCRAM-SHA-512"
    assert kafka["sasl_username"] == "logferry"
    assert kafka["ssl_ca_file"] == f"{tls_dir}/ca.crt"
    assert kafka["ssl_cert_file"] == f"{tls_dir}/tls.crt"
    assert kafka["ssl_key_file"] == f"{tls_dir}/tls.key"
    assert "sasl_password" not in kafka  # never in the ConfigMap
    assert "password" not in json.dumps(rendered.config()).replace("password_file", "")


def test_agent_monitors(agent: Render) -> None:
    rendered = agent(MONITORS)
    pm = rendered.one("PodMonitor")
    assert pm["spec"]["podMetricsEndpoints"][0]["port"] == "metrics"
    assert pm["spec"]["selector"]["matchLabels"] == \
        rendered.one("DaemonSet")["spec"]["selector"]["matchLabels"]
    assert rendered.one("ServiceMonitor")["spec"]["endpoints"][0]["port"] == "metrics"
    assert rendered.one("Service")["spec"]["clusterIP"] == "None"
    plain = agent({})
    assert not plain.has("PodMonitor") and not plain.has("ServiceMonitor")


# -- indexer -----------------------------------------------------------------------------------

def test_indexer_deployment(indexer: Render) -> None:
    rendered = indexer({})
    dep = rendered.one("Deployment")
    assert dep["spec"]["replicas"] == 2
    spec, c = pod_spec(dep), container(dep)
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] != 0
    assert c["securityContext"]["runAsNonRoot"] is True
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert c["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert spec["automountServiceAccountToken"] is False
    assert c["ports"][0]["containerPort"] == 9465
    for probe in ("livenessProbe", "readinessProbe"):
        assert c[probe]["httpGet"] == {"path": "/health", "port": "metrics"}
    assert c["resources"]["requests"] and c["resources"]["limits"]
    assert c["args"][:2] == ["indexer", "run"]
    assert rendered.config()["indexer"]["metrics_port"] == 9465
    assert rendered.config()["indexer"]["topics"] == ["logferry.logs"]
    assert not rendered.has("HorizontalPodAutoscaler") and not rendered.has("ScaledObject")


def test_indexer_topology_and_pdb(indexer: Render) -> None:
    rendered = indexer({})
    dep = rendered.one("Deployment")
    selector = dep["spec"]["selector"]["matchLabels"]
    constraints = pod_spec(dep)["topologySpreadConstraints"]
    assert [c["topologyKey"] for c in constraints] == [
        "topology.kubernetes.io/zone", "kubernetes.io/hostname"]
    for c in constraints:
        assert c["labelSelector"]["matchLabels"] == selector
        assert c["whenUnsatisfiable"] == "ScheduleAnyway"
    pdb = rendered.one("PodDisruptionBudget")
    assert pdb["spec"]["maxUnavailable"] == 1 and "minAvailable" not in pdb["spec"]
    assert pdb["spec"]["selector"]["matchLabels"] == selector
    pdb2 = indexer({"podDisruptionBudget": {"maxUnavailable": None, "minAvailable": "50%"}})
    assert pdb2.one("PodDisruptionBudget")["spec"] == {
        "minAvailable": "50%", "selector": {"matchLabels": selector}}
    off = indexer({"podDisruptionBudget": {"enabled": False},
                   "topologySpread": {"enabled": False}})
    assert not off.has("PodDisruptionBudget")
    assert "topologySpreadConstraints" not in pod_spec(off.one("Deployment"))


def test_indexer_credentials_from_secrets(indexer: Render) -> None:
    rendered = indexer({**TLS_SASL, **OS_AUTH})
    dep = rendered.one("Deployment")
    e = env(dep)
    assert e["LOGFERRY_KAFKA_SASL_PASSWORD"]["valueFrom"] == {
        "secretKeyRef": {"name": "kafka-user", "key": "password"}}
    assert e["LOGFERRY_OPENSEARCH_PASSWORD"]["valueFrom"] == {
        "secretKeyRef": {"name": "os-user", "key": "password"}}
    config = rendered.config()
    os_dir = mounts(dep)["opensearch-tls"]["mountPath"]
    assert config["opensearch"] == {
        "urls": ["https://os-0:9200", "https://os-1:9200"], "index_prefix": "logferry-logs",
        "verify_certs": True, "username": "logferry", "ca_file": f"{os_dir}/ca.crt"}
    assert config["kafka"]["security_protocol"] == "SASL_SSL"
    assert volumes(dep)["opensearch-tls"]["secret"]["secretName"] == "os-ca"
    plain = indexer({})
    assert "LOGFERRY_OPENSEARCH_PASSWORD" not in env(plain.one("Deployment"))
    assert "LOGFERRY_KAFKA_SASL_PASSWORD" not in env(plain.one("Deployment"))


def test_indexer_checksum_follows_config(indexer: Render) -> None:
    base = checksum(indexer({}).one("Deployment"))
    assert checksum(indexer({"opensearch": {"indexPrefix": "other"}}).one("Deployment")) != base
    assert checksum(indexer({"replicaCount": 3}).one("Deployment")) == base


def test_indexer_hpa(indexer: Render) -> None:
    rendered = indexer({"autoscaling": {"hpa": {"enabled": True, "minReplicas": 2,
                                                "maxReplicas": 50}},
                        "kafka": {"partitions": 12}})
    hpa = rendered.one("HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["maxReplicas"] == 12  # capped at the partition count
    assert hpa["spec"]["minReplicas"] == 2
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                             "name": rendered.one("Deployment")["metadata"]["name"]}
    assert "replicas" not in rendered.one("Deployment")["spec"]
    small = indexer({"autoscaling": {"hpa": {"enabled": True, "maxReplicas": 4}},
                     "kafka": {"partitions": 12}})
    assert small.one("HorizontalPodAutoscaler")["spec"]["maxReplicas"] == 4


def test_indexer_keda(indexer: Render) -> None:
    rendered = indexer({"autoscaling": {"keda": {"enabled": True, "maxReplicaCount": 100,
                                                 "lagThreshold": 5000}},
                        "kafka": {"partitions": 8}})
    so = rendered.one("ScaledObject")
    assert so["spec"]["maxReplicaCount"] == 8
    assert so["spec"]["maxReplicaCount"] <= 8
    (trigger,) = so["spec"]["triggers"]
    assert trigger["type"] == "kafka"
    assert trigger["metadata"] == {
        "bootstrapServers": "kafka:9092", "consumerGroup": "logferry-indexer",
        "topic": "logferry.logs", "lagThreshold": "5000", "activationLagThreshold": "0",
        "offsetResetPolicy": "earliest", "allowIdleConsumers": "false", "tls": "disable"}
    assert "authenticationRef" not in trigger
    assert not rendered.has("TriggerAuthentication") and not rendered.has("HorizontalPodAutoscaler")
    assert "replicas" not in rendered.one("Deployment")["spec"]


def test_indexer_keda_with_tls_sasl(indexer: Render) -> None:
    rendered = indexer({**TLS_SASL, "autoscaling": {"keda": {"enabled": True}},
                        "indexer": {"topics": ["logs.a", "logs.b"]}})
    so = rendered.one("ScaledObject")
    assert [t["metadata"]["topic"] for t in so["spec"]["triggers"]] == ["logs.a", "logs.b"]
    auth = rendered.one("TriggerAuthentication")
    for t in so["spec"]["triggers"]:
        assert t["metadata"]["sasl"] == "scram_sha512"
        assert t["metadata"]["tls"] == "enable"
        assert t["metadata"]["bootstrapServers"] == "kafka-0.kafka:9093,kafka-1.kafka:9093"
        assert t["authenticationRef"] == {"name": auth["metadata"]["name"]}
    refs = {r["parameter"]: (r["name"], r["key"]) for r in auth["spec"]["secretTargetRef"]}
    assert refs["password"] == ("kafka-user", "password")
    assert refs["ca"] == ("kafka-tls", "ca.crt")
    assert refs["cert"] == ("kafka-tls", "tls.crt") and refs["key"] == ("kafka-tls", "tls.key")
    user_secret = rendered.one("Secret", "-keda-kafka")
    assert refs["username"] == (user_secret["metadata"]["name"], "username")
    assert user_secret["stringData"] == {"username": "logferry"}


def test_indexer_dashboards_job(indexer: Render) -> None:
    assert not indexer({}).has("Job")
    rendered = indexer(INDEXER_CASES["monitors-dashboards"])
    job = rendered.one("Job")
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "post-install,post-upgrade"
    args = container(job)["args"]
    assert args[:2] == ["dashboards", "import"]
    assert args[args.index("--url") + 1] == "https://dashboards:5601"
    assert args[args.index("--username") + 1] == "admin"
    path = Path(args[args.index("--file") + 1])
    assert mounts(job)["objects"]["mountPath"] == str(path.parent)
    cm = rendered.one("ConfigMap", "-dashboards")
    ndjson = (ROOT / "dashboards" / "logferry.ndjson").read_text()
    assert cm["data"][path.name] == ndjson
    assert volumes(job)["objects"]["configMap"]["name"] == cm["metadata"]["name"]
    assert volumes(job)["auth"]["secret"]["secretName"] == "osd-admin"
    # The Job's pods must not count for the indexer's PDB or Service.
    selector = rendered.one("Deployment")["spec"]["selector"]["matchLabels"]
    labels = job["spec"]["template"]["metadata"]["labels"]
    assert not selector.items() <= labels.items()
    assert container(job)["securityContext"]["runAsNonRoot"] is True


def render_notes(tools: Tools, chart: Path, values: dict[str, Any], tmp_path: Path) -> str:
    """NOTES.txt as `helm install` would print it. `helm install --dry-run` needs a cluster
    here, so a copy of the chart renders the notes into a ConfigMap through `helm template`."""
    copy = tmp_path / chart.name
    shutil.copytree(chart, copy)
    notes = (copy / "templates" / "NOTES.txt").read_text()
    (copy / "templates" / "_notes_test.tpl").write_text(
        '{{- define "notes.test" -}}\n' + notes + "\n{{- end -}}\n")
    (copy / "templates" / "notes-test.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes\n"
        'data:\n  notes: {{ include "notes.test" . | toJson }}\n')
    rendered = render(tools, copy, values, tmp_path)
    text: str = rendered.one("ConfigMap", "notes")["data"]["notes"]
    return text


def test_notes(tools: Tools, tmp_path: Path) -> None:
    agent_notes = render_notes(tools, AGENT, {}, tmp_path / "a")
    assert "Next steps:" in agent_notes
    assert "reads the container logs under /var/log/pods (all namespaces), and produces" \
        in agent_notes
    mixed = render_notes(tools, AGENT, AGENT_CASES["containers-tuned"], tmp_path / "e")
    assert ("reads the container logs under /var/log/pods (namespaces team-*, shop except "
            "team-sandbox) and the files /var/log/syslog, /var/log/nginx/*.log, and") in mixed
    files = render_notes(tools, AGENT, AGENT_CASES["files-only"], tmp_path / "f")
    assert "reads the files /var/log/syslog, and produces" in files
    assert "kubectl -n logging rollout status daemonset/lf-logferry-agent" in agent_notes
    assert "kafka.brokers is still the chart default" in agent_notes
    off = render_notes(tools, AGENT, {"kubernetesMetadata": {"enabled": False},
                                      "kafka": {"brokers": ["k:9092"]}}, tmp_path / "b")
    assert "logferry.io/exclude annotation are not available" in off
    assert "still the chart default" not in off

    idx = render_notes(tools, INDEXER, {"replicaCount": 9}, tmp_path / "c")
    assert "kubectl -n logging rollout status deployment/lf-logferry-indexer" in idx
    assert "replicaCount 9 > kafka.partitions 6: 3 replica(s) will sit idle" in idx
    keda = render_notes(tools, INDEXER, {"autoscaling": {"keda": {"enabled": True}}},
                        tmp_path / "d")
    assert "KEDA scales between 1 and 6 replicas" in keda
