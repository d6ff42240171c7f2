{{/* Names ----------------------------------------------------------------------------- */}}

{{- define "logferry-indexer.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "logferry-indexer.fullname" -}}
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

{{- define "logferry-indexer.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "logferry-indexer.selectorLabels" -}}
app.kubernetes.io/name: {{ include "logferry-indexer.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "logferry-indexer.labels" -}}
helm.sh/chart: {{ include "logferry-indexer.chart" . }}
{{ include "logferry-indexer.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: indexer
app.kubernetes.io/part-of: logferry
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "logferry-indexer.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "logferry-indexer.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "logferry-indexer.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}
{{- end -}}

{{/* Paths inside the container ------------------------------------------------------- */}}
{{- define "logferry-indexer.configDir" -}}/etc/logferry/config{{- end -}}
{{- define "logferry-indexer.kafkaTlsDir" -}}/etc/logferry/kafka-tls{{- end -}}
{{- define "logferry-indexer.opensearchTlsDir" -}}/etc/logferry/opensearch-tls{{- end -}}
{{- define "logferry-indexer.dashboardsDir" -}}/etc/logferry/dashboards{{- end -}}

{{/* Kafka security protocol from tls.enabled and sasl.enabled ---------------------------- */}}
{{- define "logferry-indexer.kafkaProtocol" -}}
{{- $k := .Values.kafka -}}
{{- if and $k.tls.enabled $k.sasl.enabled -}}SASL_SSL
{{- else if $k.tls.enabled -}}SSL
{{- else if $k.sasl.enabled -}}SASL_PLAINTEXT
{{- else -}}PLAINTEXT
{{- end -}}
{{- end -}}

{{/* Checks that a JSON schema cannot express well: fail at render time, one clear line. */}}
{{- define "logferry-indexer.validate" -}}
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
{{- $o := .Values.opensearch -}}
{{- if and $o.username (not $o.existingSecret) -}}
{{- fail "opensearch.username is set: set opensearch.existingSecret to the Secret holding the password" -}}
{{- end -}}
{{- if and (or $o.tls.certKey $o.tls.keyKey) (not (and $o.tls.certKey $o.tls.keyKey $o.tls.existingSecret)) -}}
{{- fail "opensearch.tls: a client certificate needs certKey, keyKey and existingSecret" -}}
{{- end -}}
{{- $as := .Values.autoscaling -}}
{{- if and $as.hpa.enabled $as.keda.enabled -}}
{{- fail "autoscaling: enable at most one of hpa and keda (KEDA creates its own HPA)" -}}
{{- end -}}
{{- if and $as.hpa.enabled (gt (int $as.hpa.minReplicas) (int (include "logferry-indexer.hpaMax" .))) -}}
{{- fail (printf "autoscaling.hpa.minReplicas (%d) exceeds maxReplicas capped at kafka.partitions (%s)" (int $as.hpa.minReplicas) (include "logferry-indexer.hpaMax" .)) -}}
{{- end -}}
{{- if and $as.keda.enabled (gt (int $as.keda.minReplicaCount) (int (include "logferry-indexer.kedaMax" .))) -}}
{{- fail (printf "autoscaling.keda.minReplicaCount (%d) exceeds maxReplicaCount capped at kafka.partitions (%s)" (int $as.keda.minReplicaCount) (include "logferry-indexer.kedaMax" .)) -}}
{{- end -}}
{{- $pdb := .Values.podDisruptionBudget -}}
{{- if and $pdb.enabled (eq (kindIs "invalid" $pdb.maxUnavailable) (kindIs "invalid" $pdb.minAvailable)) -}}
{{- fail "podDisruptionBudget: set exactly one of maxUnavailable and minAvailable (the other null)" -}}
{{- end -}}
{{- $d := .Values.dashboards.import -}}
{{- if and $d.enabled $d.username (not $d.existingSecret) -}}
{{- fail "dashboards.import.username is set: set dashboards.import.existingSecret to the Secret holding the password" -}}
{{- end -}}
{{- end -}}

{{/* Autoscaling maxima, capped at the partition count: more consumers than partitions idle. */}}
{{- define "logferry-indexer.hpaMax" -}}
{{- min (int .Values.autoscaling.hpa.maxReplicas) (int .Values.kafka.partitions) -}}
{{- end -}}
{{- define "logferry-indexer.kedaMax" -}}
{{- min (int .Values.autoscaling.keda.maxReplicaCount) (int .Values.kafka.partitions) -}}
{{- end -}}

{{- define "logferry-indexer.topics" -}}
{{- if .Values.indexer.topics -}}
{{- toJson .Values.indexer.topics -}}
{{- else -}}
{{- toJson (list .Values.kafka.topic) -}}
{{- end -}}
{{- end -}}

{{/* The logferry config file (JSON), rendered from values. Only keys that exist in
     logferry/config/_model.py are written: logferry rejects unknown keys at start. */}}
{{- define "logferry-indexer.config" -}}
{{- $k := .Values.kafka -}}
{{- $kafka := dict "brokers" $k.brokers "topic" $k.topic "client_id" $k.clientId
      "security_protocol" (include "logferry-indexer.kafkaProtocol" .) -}}
{{- if not (kindIs "invalid" $k.requestTimeoutSeconds) -}}
{{- $_ := set $kafka "request_timeout_s" $k.requestTimeoutSeconds -}}
{{- end -}}
{{- if $k.sasl.enabled -}}
{{- $_ := set $kafka "sasl_mechanism" $k.sasl.mechanism -}}
{{- $_ := set $kafka "sasl_username" $k.sasl.username -}}
{{- end -}}
{{- if and $k.tls.enabled $k.tls.existingSecret -}}
{{- $dir := include "logferry-indexer.kafkaTlsDir" . -}}
{{- if $k.tls.caKey -}}
{{- $_ := set $kafka "ssl_ca_file" (printf "%s/%s" $dir $k.tls.caKey) -}}
{{- end -}}
{{- if $k.tls.certKey -}}
{{- $_ := set $kafka "ssl_cert_file" (printf "%s/%s" $dir $k.tls.certKey) -}}
{{- $_ := set $kafka "ssl_key_file" (printf "%s/%s" $dir $k.tls.keyKey) -}}
{{- end -}}
{{- end -}}
{{- $o := .Values.opensearch -}}
{{- $os := dict "urls" $o.urls "index_prefix" $o.indexPrefix "verify_certs" $o.tls.verifyCerts -}}
{{- if $o.username -}}
{{- $_ := set $os "username" $o.username -}}
{{- end -}}
{{- if not (kindIs "invalid" $o.requestTimeoutSeconds) -}}
{{- $_ := set $os "request_timeout_s" $o.requestTimeoutSeconds -}}
{{- end -}}
{{- if $o.tls.existingSecret -}}
{{- $dir := include "logferry-indexer.opensearchTlsDir" . -}}
{{- if $o.tls.caKey -}}
{{- $_ := set $os "ca_file" (printf "%s/%s" $dir $o.tls.caKey) -}}
{{- end -}}
{{- if $o.tls.certKey -}}
{{- $_ := set $os "client_cert_file" (printf "%s/%s" $dir $o.tls.certKey) -}}
{{- $_ := set $os "client_key_file" (printf "%s/%s" $dir $o.tls.keyKey) -}}
{{- end -}}
{{- end -}}
{{- $i := .Values.indexer -}}
{{- $indexer := dict "group_id" $i.groupId "topics" (include "logferry-indexer.topics" . | fromJsonArray)
      "dead_letter_topic" $i.deadLetterTopic "metrics_port" (int .Values.metrics.port) -}}
{{- $optional := dict "bulkMaxDocs" "bulk_max_docs" "bulkMaxBytes" "bulk_max_bytes"
      "flushIntervalSeconds" "flush_interval_s" "maxRetries" "max_retries" -}}
{{- range $key, $field := $optional -}}
{{- $v := index $i $key -}}
{{- if not (kindIs "invalid" $v) -}}
{{- $_ := set $indexer $field $v -}}
{{- end -}}
{{- end -}}
{{- $config := dict "kafka" $kafka "opensearch" $os "indexer" $indexer "log_level" .Values.logLevel -}}
{{- toPrettyJson $config -}}
{{- end -}}
