{{/* Names, labels and computed settings shared by the templates. */}}

{{/* The chart name, or nameOverride. */}}
{{- define "vahana.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's full name: the release name alone when it already holds the chart name. */}}
{{- define "vahana.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "vahana.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object. */}}
{{- define "vahana.labels" -}}
helm.sh/chart: {{ include "vahana.chart" . }}
{{ include "vahana.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: vahana
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Labels that select the operator's pods (never change them: selectors are immutable). */}}
{{- define "vahana.selectorLabels" -}}
app.kubernetes.io/name: {{ include "vahana.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "vahana.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "vahana.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name: required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "vahana.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{/* How pool workers reach the scheduler: the Service's DNS name unless set. */}}
{{- define "vahana.workerServerAddress" -}}
{{- .Values.operator.workerServerAddress | default (printf "%s.%s.svc:%d" (include "vahana.fullname" .) .Release.Namespace (int .Values.grpc.port)) }}
{{- end }}

{{- define "vahana.leaseName" -}}
{{- .Values.operator.leaderElection.leaseName | default (printf "%s-operator" (include "vahana.fullname" .)) }}
{{- end }}

{{/* The SQLite file's claim: an existing one, or the chart's. */}}
{{- define "vahana.sqliteClaim" -}}
{{- .Values.store.sqlite.persistence.existingClaim | default (printf "%s-state" (include "vahana.fullname" .)) }}
{{- end }}

{{/* True (non-empty) when the state dir is a PersistentVolumeClaim. */}}
{{- define "vahana.persistent" -}}
{{- if and (eq .Values.store.type "sqlite") .Values.store.sqlite.persistence.enabled }}true{{ end }}
{{- end }}

{{/* Rules across fields, which the JSON schema cannot say clearly. */}}
{{- define "vahana.validate" -}}
{{- if and (gt (int .Values.replicaCount) 1) (ne .Values.store.type "postgresql") }}
{{- fail "replicaCount: more than 1 replica needs store.type: postgresql (a SQLite file cannot be shared between pods)" }}
{{- end }}
{{- if and (gt (int .Values.replicaCount) 1) (not .Values.operator.leaderElection.enabled) }}
{{- fail "operator.leaderElection.enabled: must be true with more than 1 replica" }}
{{- end }}
{{- if and (eq .Values.store.type "postgresql") (not .Values.store.postgresql.existingSecret) }}
{{- fail "store.postgresql.existingSecret: required when store.type is postgresql" }}
{{- end }}
{{- if eq (int .Values.grpc.port) (int .Values.metrics.port) }}
{{- fail "metrics.port: must differ from grpc.port" }}
{{- end }}
{{- if or (eq (int .Values.remotePools.downloadPort) (int .Values.grpc.port)) (eq (int .Values.remotePools.downloadPort) (int .Values.metrics.port)) }}
{{- fail "remotePools.downloadPort: must differ from grpc.port and metrics.port" }}
{{- end }}
{{- if and .Values.ui.enabled (has (int .Values.ui.port) (list (int .Values.grpc.port) (int .Values.metrics.port) (int .Values.remotePools.downloadPort))) }}
{{- fail "ui.port: must differ from grpc.port, metrics.port and remotePools.downloadPort" }}
{{- end }}
{{- end }}

{{/*
The health probe of the gRPC port. The kubelet's gRPC probe speaks plaintext only, so with
mutual TLS the probe checks that the port accepts connections (only the leader listens).
*/}}
{{- define "vahana.grpcProbe" -}}
{{- if .Values.tls.serverSecretName -}}
tcpSocket:
  port: {{ .Values.grpc.port }}
{{- else -}}
grpc:
  port: {{ .Values.grpc.port }}
{{- end -}}
{{- end }}
