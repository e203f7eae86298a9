{{/* Chart name, truncated to the 63 characters a label value allows. */}}
{{- define "videojob.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified app name: release-chart unless the release name already contains the chart name. */}}
{{- define "videojob.fullname" -}}
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

{{- define "videojob.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "videojob.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "videojob.selectorLabels" -}}
app.kubernetes.io/name: {{ include "videojob.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "videojob.serviceAccountName" -}}
{{- default (include "videojob.fullname" .) .Values.serviceAccount.name }}
{{- end }}

{{/* PriorityClass name for a band: the value given, or <fullname>-<band>. */}}
{{- define "videojob.priorityClassName" -}}
{{- $band := index .root.Values.priorityClasses.bands .band -}}
{{- default (printf "%s-%s" (include "videojob.fullname" .root) .band) $band.name }}
{{- end }}
