{{/* The release's full name: the release name, or release-chart when the release name lacks the chart's. */}}
{{- define "redisguard.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "redisguard.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "redisguard.labels" -}}
{{ include "redisguard.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "redisguard.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "redisguard.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Whether the daemon serves a web config (TLS or basic auth). */}}
{{- define "redisguard.web" -}}
{{- if or .Values.web.existingSecret .Values.web.tls.secretName .Values.web.basicAuth.users -}}true{{- end -}}
{{- end -}}

{{- define "redisguard.scheme" -}}
{{- if or .Values.web.tls.secretName (and .Values.web.existingSecret .Values.serviceMonitor.tlsConfig) -}}https{{- else -}}http{{- end -}}
{{- end -}}

{{/* The daemon's redisguard.yaml: the values' config with the listener the pod needs. */}}
{{- define "redisguard.config" -}}
{{- $server := dict "listen" (printf ":%d" (int .Values.port)) -}}
{{- if include "redisguard.web" . -}}
{{- $_ := set $server "web_config_file" "/etc/redisguard/web/web-config.yml" -}}
{{- end -}}
{{- $config := mustMergeOverwrite (deepCopy .Values.config) (dict "server" $server) -}}
{{- toYaml $config -}}
{{- end -}}
