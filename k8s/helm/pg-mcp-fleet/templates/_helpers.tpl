{{/* Chart name, truncated to the 63 characters of a DNS label. */}}
{{- define "pg-mcp-fleet.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name of the release's objects. A release named like the chart (the
usual `helm install pg-mcp-fleet ...`) gives "pg-mcp-fleet", the names the
kustomize base uses.
*/}}
{{- define "pg-mcp-fleet.fullname" -}}
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

{{- define "pg-mcp-fleet.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels that select the server Pods (immutable once deployed). */}}
{{- define "pg-mcp-fleet.selectorLabels" -}}
app.kubernetes.io/name: {{ include "pg-mcp-fleet.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: mcp-server
{{- end }}

{{- define "pg-mcp-fleet.labels" -}}
helm.sh/chart: {{ include "pg-mcp-fleet.chart" . }}
{{ include "pg-mcp-fleet.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: pg-mcp-fleet
{{- end }}

{{- define "pg-mcp-fleet.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "pg-mcp-fleet.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "pg-mcp-fleet.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{- define "pg-mcp-fleet.authSecretName" -}}
{{- default (printf "%s-auth" (include "pg-mcp-fleet.fullname" .)) .Values.auth.existingSecret }}
{{- end }}

{{/* The source URL of <file> in the configured object store. */}}
{{- define "pg-mcp-fleet.s3url" -}}
{{- $v := .root.Values }}
{{- if eq $v.store "gcs" }}
{{- printf "gs://%s/%s%s" $v.gcs.bucket $v.gcs.prefix .file }}
{{- else if eq $v.store "azure" }}
{{- printf "https://%s.blob.core.windows.net/%s/%s%s" $v.azure.account $v.azure.container $v.azure.prefix .file }}
{{- else }}
{{- printf "s3://%s/%s%s" $v.s3.bucket $v.s3.prefix .file }}
{{- end }}
{{- end }}

{{/* The sync manifest read by kb-init and kb-sync-sidecar. */}}
{{- define "pg-mcp-fleet.syncManifest" -}}
dest_dir: /data
files:
  - name: kb.db
    source: {{ include "pg-mcp-fleet.s3url" (dict "root" . "file" "kb.db") }}
    kind: kb
    {{- with .Values.sync.kbSha256 }}
    sha256: {{ . | quote }}
    {{- end }}
{{- if ne .Values.auth.source "secret" }}
  - name: tokens.yaml
    source: {{ include "pg-mcp-fleet.s3url" (dict "root" . "file" "tokens.yaml") }}
    kind: tokens
  - name: users.yaml
    source: {{ include "pg-mcp-fleet.s3url" (dict "root" . "file" "users.yaml") }}
    kind: users
  - name: session.key
    source: {{ include "pg-mcp-fleet.s3url" (dict "root" . "file" "session.key") }}
    kind: session-key
{{- end }}
{{- with .Values.sync.extraFiles }}
{{ toYaml . | indent 2 }}
{{- end }}
{{- end }}

{{/* Where the server finds its auth files. */}}
{{- define "pg-mcp-fleet.authDir" -}}
{{- if eq .Values.auth.source "secret" }}/secrets{{ else }}/data{{ end }}
{{- end }}
