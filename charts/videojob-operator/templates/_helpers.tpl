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

{{/*
image reference: repository:tag, the tag defaulting to the chart's appVersion, or repository@digest when a digest
is given (the tag is then left out: the digest alone decides). Call with an image dict and the root.
*/}}
{{- define "videojob.image" -}}
{{- if .image.digest }}
{{- printf "%s@%s" .image.repository .image.digest }}
{{- else }}
{{- printf "%s:%s" .image.repository (default .root.Chart.AppVersion .image.tag) }}
{{- end }}
{{- end }}

{{/* PriorityClass name a band's Jobs get: the created class, a given existing class, or none (empty). */}}
{{- define "videojob.bandClassName" -}}
{{- if .root.Values.priorityClasses.create }}
{{- include "videojob.priorityClassName" . }}
{{- else }}
{{- (index .root.Values.priorityClasses.bands .band).name }}
{{- end }}
{{- end }}

{{/* Namespaces that get the chart's S3 Secret and, with watchNamespaces, the operator's RoleBindings. */}}
{{- define "videojob.secretNamespaces" -}}
{{- if .Values.watchNamespaces }}
{{- toJson .Values.watchNamespaces }}
{{- else }}
{{- toJson (list .Release.Namespace) }}
{{- end }}
{{- end }}

{{/*
The operator's settings as container env: one variable per field of videojob.controller.settings.Settings, always
all of them (an empty value means "the operator's default"), so tests/unit/test_chart.py can check the names
against Settings.env_names(). Integers go through int64, or large ones would print as 1e+06.
*/}}
{{- define "videojob.settingsEnv" -}}
{{- $v := .Values -}}
{{- $classes := dict -}}
{{- range $band := list "urgent" "normal" "low" }}
{{- $_ := set $classes $band (include "videojob.bandClassName" (dict "root" $ "band" $band)) }}
{{- end }}
- name: VIDEOJOB_NAMESPACES
  value: {{ join "," $v.watchNamespaces | quote }}
- name: VIDEOJOB_MAX_RUNNING
  value: {{ $v.maxRunning | int64 | quote }}
- name: VIDEOJOB_MAX_RUNNING_GPU
  value: {{ $v.maxRunningGpu | int64 | quote }}
- name: VIDEOJOB_MAX_RUNNING_PER_NAMESPACE
  value: {{ $v.namespaceLimits.maxRunning | int64 | quote }}
- name: VIDEOJOB_NAMESPACE_MAX_RUNNING
  value: {{ toJson $v.namespaceLimits.overrides | quote }}
- name: VIDEOJOB_FAIR_SHARING
  value: {{ $v.fairSharing.enabled | toString | quote }}
- name: VIDEOJOB_NAMESPACE_WEIGHTS
  value: {{ toJson $v.fairSharing.weights | quote }}
- name: VIDEOJOB_TRANSCODER_IMAGE
  value: {{ include "videojob.image" (dict "image" $v.transcoder.image "root" $) | quote }}
- name: VIDEOJOB_TRANSCODER_PULL_POLICY
  value: {{ $v.transcoder.image.pullPolicy | quote }}
- name: VIDEOJOB_TRANSCODER_COMMAND
  value: {{ if $v.transcoder.command }}{{ toJson $v.transcoder.command | quote }}{{ else }}""{{ end }}
- name: VIDEOJOB_TRANSCODER_ENV
  value: {{ toJson $v.transcoder.env | quote }}
- name: VIDEOJOB_TRANSCODER_SERVICE_ACCOUNT
  value: {{ $v.transcoder.serviceAccountName | quote }}
- name: VIDEOJOB_TRANSCODER_SERVICE_ACCOUNT_ANNOTATIONS
  value: {{ toJson $v.transcoder.serviceAccountAnnotations | quote }}
- name: VIDEOJOB_TRANSCODER_POD
  value: {{ toJson $v.transcoder.pod | quote }}
- name: VIDEOJOB_TRANSCODER_POD_SECURITY_CONTEXT
  value: {{ toJson $v.transcoder.podSecurityContext | quote }}
- name: VIDEOJOB_TRANSCODER_SECURITY_CONTEXT
  value: {{ toJson $v.transcoder.securityContext | quote }}
- name: VIDEOJOB_CPU_RESOURCES
  value: {{ toJson $v.transcoder.resources.cpu | quote }}
- name: VIDEOJOB_NVIDIA_RESOURCES
  value: {{ toJson $v.transcoder.resources.nvidia | quote }}
- name: VIDEOJOB_WORKDIR_SIZE_LIMIT
  value: {{ $v.transcoder.workdirSizeLimit | quote }}
- name: VIDEOJOB_PRIORITY_CLASSES
  value: {{ toJson $classes | quote }}
- name: VIDEOJOB_DEFAULT_ACTIVE_DEADLINE_SECONDS
  value: {{ $v.transcoder.activeDeadlineSeconds | int64 | quote }}
- name: VIDEOJOB_STUCK_TIMEOUT_SECONDS
  value: {{ if kindIs "invalid" $v.transcoder.stuckTimeoutSeconds }}"never"{{ else }}{{ $v.transcoder.stuckTimeoutSeconds | int64 | quote }}{{ end }}
- name: VIDEOJOB_DEFAULT_TTL_SECONDS
  value: {{ if kindIs "invalid" $v.defaultTtlSeconds }}"never"{{ else }}{{ $v.defaultTtlSeconds | int64 | quote }}{{ end }}
- name: VIDEOJOB_PROGRESS_INTERVAL
  value: {{ $v.transcoder.progressInterval | toString | quote }}
- name: VIDEOJOB_GPU_NODE_SELECTOR
  value: {{ toJson $v.gpu.nodeSelector | quote }}
- name: VIDEOJOB_GPU_TOLERATIONS
  value: {{ toJson $v.gpu.tolerations | quote }}
- name: VIDEOJOB_GPU_RESOURCE
  value: {{ $v.gpu.resourceName | quote }}
- name: VIDEOJOB_S3_SECRET
  value: {{ $v.s3.secretName | quote }}
- name: VIDEOJOB_S3_ENDPOINT_URL
  value: {{ $v.s3.endpointUrl | quote }}
- name: VIDEOJOB_S3_REGION
  value: {{ $v.s3.region | quote }}
- name: VIDEOJOB_S3_AUTH
  value: {{ $v.s3.auth | quote }}
- name: VIDEOJOB_S3_ROLE_ARN
  value: {{ $v.s3.webIdentity.roleArn | quote }}
- name: VIDEOJOB_S3_TOKEN_AUDIENCE
  value: {{ $v.s3.webIdentity.audience | quote }}
- name: VIDEOJOB_S3_STS_ENDPOINT_URL
  value: {{ $v.s3.webIdentity.stsEndpointUrl | quote }}
- name: VIDEOJOB_ALLOW_HTTP
  value: {{ $v.inputs.allowHttp | toString | quote }}
- name: VIDEOJOB_ALLOWED_HOSTS
  value: {{ join "," $v.inputs.allowedHosts | quote }}
- name: VIDEOJOB_METRICS_PORT
  value: {{ $v.metrics.port | int64 | quote }}
- name: VIDEOJOB_RESYNC_SECONDS
  value: {{ $v.reconcile.resyncSeconds | toString | quote }}
- name: VIDEOJOB_RELIST_SECONDS
  value: {{ $v.reconcile.relistSeconds | toString | quote }}
- name: VIDEOJOB_DEBOUNCE_SECONDS
  value: {{ $v.reconcile.debounceSeconds | toString | quote }}
- name: VIDEOJOB_API_WORKERS
  value: {{ $v.reconcile.apiWorkers | int64 | quote }}
- name: VIDEOJOB_WORKER_LIMIT
  value: {{ $v.reconcile.workerLimit | int64 | quote }}
- name: VIDEOJOB_WATCH_SERVER_TIMEOUT
  value: {{ $v.reconcile.watchServerTimeout | int64 | quote }}
- name: VIDEOJOB_WATCH_CLIENT_TIMEOUT
  value: {{ $v.reconcile.watchClientTimeout | int64 | quote }}
- name: VIDEOJOB_LOG_FORMAT
  value: {{ $v.logging.format | quote }}
- name: VIDEOJOB_LOG_LEVEL
  value: {{ $v.logging.level | quote }}
- name: VIDEOJOB_NOTIFY_WEBHOOKS
  value: {{ toJson $v.notifications.webhooks | quote }}
- name: VIDEOJOB_OPERATOR_NAMESPACE
  value: {{ .Release.Namespace | quote }}
- name: VIDEOJOB_NOTIFY_ALLOW_HTTP
  value: {{ $v.notifications.allowHttp | toString | quote }}
- name: VIDEOJOB_NOTIFY_ALLOWED_NETWORKS
  value: {{ join "," $v.notifications.allowedNetworks | quote }}
- name: VIDEOJOB_NOTIFY_CA_BUNDLE
  value: {{ $v.notifications.caBundle | quote }}
- name: VIDEOJOB_NOTIFY_ATTEMPTS
  value: {{ $v.notifications.attempts | int64 | quote }}
- name: VIDEOJOB_NOTIFY_MAX_BACKOFF_SECONDS
  value: {{ $v.notifications.maxBackoffSeconds | toString | quote }}
- name: VIDEOJOB_NOTIFY_MAX_AGE_SECONDS
  value: {{ $v.notifications.maxAgeSeconds | int64 | quote }}
- name: VIDEOJOB_LEADER_ELECTION
  value: {{ $v.leaderElection.enabled | toString | quote }}
- name: VIDEOJOB_LEADER_ELECTION_LEASE_NAME
  value: {{ include "videojob.fullname" $ | quote }}
- name: VIDEOJOB_LEADER_ELECTION_LEASE_DURATION
  value: {{ $v.leaderElection.leaseDurationSeconds | toString | quote }}
- name: VIDEOJOB_LEADER_ELECTION_RENEW_DEADLINE
  value: {{ $v.leaderElection.renewDeadlineSeconds | toString | quote }}
- name: VIDEOJOB_LEADER_ELECTION_RETRY_PERIOD
  value: {{ $v.leaderElection.retryPeriodSeconds | toString | quote }}
{{- end }}

{{/*
NetworkPolicy peers: the given CIDRs (each less the denied ones it contains is left to the platform team: list
precise ones), or, when none are given, every IPv4 and IPv6 address but the excepted ones.
*/}}
{{- define "videojob.networkPeers" -}}
{{- if .cidrs }}
{{- range .cidrs }}
- ipBlock: {cidr: {{ . | quote }}}
{{- end }}
{{- else }}
- ipBlock:
    cidr: 0.0.0.0/0
    {{- with .v4except }}
    except: {{ toJson . }}
    {{- end }}
- ipBlock:
    cidr: ::/0
    {{- with .v6except }}
    except: {{ toJson . }}
    {{- end }}
{{- end }}
{{- end }}
