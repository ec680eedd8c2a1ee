{{/* Names and labels shared by every template. */}}

{{- define "mimo-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Release-scoped name; the release name alone when it already says mimo-operator. */}}
{{- define "mimo-operator.fullname" -}}
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

{{- define "mimo-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Selector labels: stable across upgrades (a Deployment's selector is immutable). */}}
{{- define "mimo-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "mimo-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "mimo-operator.labels" -}}
helm.sh/chart: {{ include "mimo-operator.chart" . }}
{{ include "mimo-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "mimo-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "mimo-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "mimo-operator.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}
{{- end }}

{{/* The restricted Pod Security Standard, shared by the operator and the test pod. */}}
{{- define "mimo-operator.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "mimo-operator.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/*
An image reference's repository as the container runtime resolves it, the way the operator normalises
it (operator/mimo_operator/api/policy.py, image_repository): no digest or tag, Docker Hub explicit.
`vllm/vllm-openai:v1` -> docker.io/vllm/vllm-openai, `ubuntu` -> docker.io/library/ubuntu.
*/}}
{{- define "mimo-operator.imageRepository" -}}
{{- $name := index (splitList "@" .) 0 -}}
{{- $last := last (splitList "/" $name) -}}
{{- if contains ":" $last -}}
{{- $name = printf "%s%s" (trimSuffix $last $name) (index (splitList ":" $last) 0) -}}
{{- end -}}
{{- $parts := splitList "/" $name -}}
{{- $first := index $parts 0 -}}
{{- if eq (len $parts) 1 -}}
docker.io/library/{{ $name }}
{{- else if or (contains "." $first) (contains ":" $first) (eq $first "localhost") -}}
{{ $name }}
{{- else -}}
docker.io/{{ $name }}
{{- end -}}
{{- end -}}
