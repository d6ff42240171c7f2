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
      "checkpointIntervalSeconds" "checkpoint_interval_s" "rotateWaitSeconds" "rotate_wait_s" -}}
{{- range $key, $field := $optional -}}
{{- $v := index $a $key -}}
{{- if not (kindIs "invalid" $v) -}}
{{- $_ := set $agent $field $v -}}
{{- end -}}
{{- end -}}
{{- $config := dict "kafka" $kafka "agent" $agent "log_level" .Values.logLevel -}}
{{- toPrettyJson $config -}}
{{- end -}}
