{{/* Names ----------------------------------------------------------------------------- */}}

{{- define "logferry-agent.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "logferry-agent.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "logferry-agent.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "logferry-agent.selectorLabels" -}}
app.kubernetes.io/name: {{ include "logferry-agent.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "logferry-agent.labels" -}}
helm.sh/chart: {{ include "logferry-agent.chart" . }}
{{ include "logferry-agent.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: agent
app.kubernetes.io/part-of: logferry
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "logferry-agent.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "logferry-agent.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "logferry-agent.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}
{{- end -}}

{{/* Paths inside the container ------------------------------------------------------- */}}
{{- define "logferry-agent.configDir" -}}/etc/logferry/config{{- end -}}
{{- define "logferry-agent.kafkaTlsDir" -}}/etc/logferry/kafka-tls{{- end -}}
{{- define "logferry-agent.stateDir" -}}/var/lib/logferry/agent{{- end -}}

{{/* containers.root when it needs a mount of its own (not under the /var/log mount and not
     in extraHostPaths); empty otherwise. */}}
{{- define "logferry-agent.containersRootMount" -}}
{{- $c := .Values.containers -}}
{{- $root := trimSuffix "/" $c.root -}}
{{- if and $c.enabled (not (hasPrefix "/var/log/" (printf "%s/" $root))) (not (has $root .Values.extraHostPaths)) -}}
{{- $root -}}
{{- end -}}
{{- end -}}

{{/* Kafka security protocol from tls.enabled and sasl.enabled ---------------------------- */}}
{{- define "logferry-agent.kafkaProtocol" -}}
{{- $k := .Values.kafka -}}
{{- if and $k.tls.enabled $k.sasl.enabled -}}SASL_SSL
{{- else if $k.tls.enabled -}}SSL
{{- else if $k.sasl.enabled -}}SASL_PLAINTEXT
{{- else -}}PLAINTEXT
{{- end -}}
{{- end -}}

{{/* Checks that a JSON schema cannot express well: fail at render time, one clear line. */}}
{{- define "logferry-agent.validate" -}}
{{- $k := .Values.kafka -}}
{{- if and $k.sasl.enabled (not $k.sasl.username) -}}
{{- fail "kafka.sasl.enabled is true: set kafka.sasl.username" -}}
{{- end -}}
{{- if and $k.sasl.enabled (not $k.sasl.existingSecret) -}}
{{- fail "kafka.sasl.enabled is true: set kafka.sasl.existingSecret to the Secret holding the password" -}}
{{- end -}}
{{- if and $k.tls.enabled (or $k.tls.certKey $k.tls.keyKey) (not (and $k.tls.certKey $k.tls.keyKey)) -}}
{{- fail "kafka.tls: set both certKey and keyKey for mutual TLS, or neither" -}}
{{- end -}}
{{- if and $k.tls.enabled (or $k.tls.certKey $k.tls.keyKey) (not $k.tls.existingSecret) -}}
{{- fail "kafka.tls.certKey/keyKey need kafka.tls.existingSecret" -}}
{{- end -}}
{{- $c := .Values.containers -}}
{{- if and (not $c.enabled) (not .Values.agent.include) -}}
{{- fail "nothing to read: containers.enabled is false and agent.include is empty" -}}
{{- end -}}
{{- if $c.enabled -}}
{{- /* A glob of agent.include that matches a container log file (tested on a sample path,
       the glob turned into a regex) would read it a second time as a plain file. */ -}}
{{- $root := printf "%s/" (trimSuffix "/" $c.root) -}}
{{- $sample := printf "%sns_pod-0_0b5a7c3e-0000-4000-8000-000000000000/app/0.log" $root -}}
{{- range .Values.agent.include -}}
{{- $re := regexQuoteMeta . | replace "\\*\\*" ".*" | replace "\\*" "[^/]*" | replace "\\?" "[^/]" -}}
{{- if or (hasPrefix $root .) (regexMatch (printf "^%s$" $re) $sample) -}}
{{- fail (printf "agent.include %q reads files under containers.root %s, which containers.enabled already reads: every line would be shipped twice (and the raw CRI/docker line could be indexed instead of the parsed one); remove it from agent.include" . $c.root) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- $meta := .Values.kubernetesMetadata -}}
{{- if and (not $meta.enabled) (or $meta.includePodLabels $meta.excludePodLabels) -}}
{{- fail "kubernetesMetadata.includePodLabels/excludePodLabels need kubernetesMetadata.enabled: pod labels come from the API server" -}}
{{- end -}}
{{- range $name, $m := dict "agent.multiline" .Values.agent.multiline "containers.multiline" $c.multiline -}}
{{- if and (eq (toString $m.mode) "start_pattern") (not $m.startPattern) -}}
{{- fail (printf "%s.mode is start_pattern: set %s.startPattern" $name $name) -}}
{{- end -}}
{{- if and (eq (toString $m.mode) "indent") $m.startPattern -}}
{{- fail (printf "%s.startPattern is set but mode is indent: use mode start_pattern, or drop startPattern" $name) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* A multiline section (agent.multiline, containers.multiline) as logferry's JSON: unset
     bounds keep logferry's defaults; mode false is "off" (YAML reads an unquoted off as false). */}}
{{- define "logferry-agent.multiline" -}}
{{- $mode := .mode -}}
{{- if or (kindIs "invalid" $mode) (kindIs "bool" $mode) -}}{{- $mode = "off" -}}{{- end -}}
{{- $out := dict "mode" $mode -}}
{{- if .startPattern -}}
{{- $_ := set $out "start_pattern" .startPattern -}}
{{- end -}}
{{- $optional := dict "maxLines" "max_lines" "maxBytes" "max_bytes" "timeoutSeconds" "timeout_s" -}}
{{- range $key, $field := $optional -}}
{{- $v := index $ $key -}}
{{- if not (kindIs "invalid" $v) -}}
{{- $_ := set $out $field $v -}}
{{- end -}}
{{- end -}}
{{- toJson $out -}}
{{- end -}}

{{/* The logferry config file (JSON), rendered from values. Only keys that exist in
     logferry/config/_model.py are written: logferry rejects unknown keys at start. */}}
{{- define "logferry-agent.config" -}}
{{- $k := .Values.kafka -}}
{{- $kafka := dict "brokers" $k.brokers "topic" $k.topic "client_id" $k.clientId
      "security_protocol" (include "logferry-agent.kafkaProtocol" .) -}}
{{- if not (kindIs "invalid" $k.requestTimeoutSeconds) -}}
{{- $_ := set $kafka "request_timeout_s" $k.requestTimeoutSeconds -}}
{{- end -}}
{{- if $k.sasl.enabled -}}
{{- $_ := set $kafka "sasl_mechanism" $k.sasl.mechanism -}}
{{- $_ := set $kafka "sasl_username" $k.sasl.username -}}
{{- end -}}
{{- if and $k.tls.enabled $k.tls.existingSecret -}}
{{- $dir := include "logferry-agent.kafkaTlsDir" . -}}
{{- if $k.tls.caKey -}}
{{- $_ := set $kafka "ssl_ca_file" (printf "%s/%s" $dir $k.tls.caKey) -}}
{{- end -}}
{{- if $k.tls.certKey -}}
{{- $_ := set $kafka "ssl_cert_file" (printf "%s/%s" $dir $k.tls.certKey) -}}
{{- $_ := set $kafka "ssl_key_file" (printf "%s/%s" $dir $k.tls.keyKey) -}}
{{- end -}}
{{- end -}}
{{- $a := .Values.agent -}}
{{- $agent := dict "include" $a.include "exclude" $a.exclude "start_at" $a.startAt
      "state_dir" (include "logferry-agent.stateDir" .) "metrics_port" (int .Values.metrics.port) -}}
{{- $optional := dict "maxLineBytes" "max_line_bytes" "readChunkBytes" "read_chunk_bytes"
      "batchMaxBytes" "batch_max_bytes" "lingerSeconds" "linger_s" "compression" "compression"
      "maxInflightBytes" "max_inflight_bytes" "scanIntervalSeconds" "scan_interval_s"
      "checkpointIntervalSeconds" "checkpoint_interval_s" "rotateWaitSeconds" "rotate_wait_s"
      "maxOpenFiles" "max_open_files" "closeIdleSeconds" "close_idle_s"
      "yieldAfterSeconds" "yield_after_s" -}}
{{- range $key, $field := $optional -}}
{{- $v := index $a $key -}}
{{- if not (kindIs "invalid" $v) -}}
{{- $_ := set $agent $field $v -}}
{{- end -}}
{{- end -}}
{{- $_ := set $agent "multiline" (include "logferry-agent.multiline" $a.multiline | fromJson) -}}
{{- $c := .Values.containers -}}
{{- $containers := dict "enabled" $c.enabled "root" $c.root "format" $c.format
      "include_namespaces" $c.includeNamespaces "exclude_namespaces" $c.excludeNamespaces
      "exclude_annotation" $c.excludeAnnotation
      "multiline" (include "logferry-agent.multiline" $c.multiline | fromJson) -}}
{{- if not (kindIs "invalid" $c.partialTimeoutSeconds) -}}
{{- $_ := set $containers "partial_timeout_s" $c.partialTimeoutSeconds -}}
{{- end -}}
{{- if not (kindIs "invalid" $c.partialMaxBytes) -}}
{{- $_ := set $containers "partial_max_bytes" $c.partialMaxBytes -}}
{{- end -}}
{{- $m := .Values.kubernetesMetadata -}}
{{- $metadata := dict "enabled" (and $c.enabled $m.enabled) -}}
{{- if and $c.enabled $m.enabled -}}
{{- $_ := set $metadata "include_pod_labels" ($m.includePodLabels | default dict) -}}
{{- $_ := set $metadata "exclude_pod_labels" ($m.excludePodLabels | default dict) -}}
{{- if not (kindIs "invalid" $m.waitForPodSeconds) -}}
{{- $_ := set $metadata "wait_for_pod_s" $m.waitForPodSeconds -}}
{{- end -}}
{{- end -}}
{{- $_ := set $containers "metadata" $metadata -}}
{{- $_ := set $agent "containers" $containers -}}
{{- $config := dict "kafka" $kafka "agent" $agent "log_level" .Values.logLevel -}}
{{- toPrettyJson $config -}}
{{- end -}}
