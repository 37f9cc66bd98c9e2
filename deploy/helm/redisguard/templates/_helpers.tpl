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

{{/* What values.schema.json cannot say clearly (or without echoing a secret): each a message naming the key. */}}
{{- define "redisguard.checks" -}}
{{- if hasKey .Values.config "server" -}}
{{- fail "config.server: the chart sets it (port, web.*): remove config.server from the values" -}}
{{- end -}}
{{- range $name, $hash := .Values.web.basicAuth.users -}}
{{- if not (regexMatch "^\\$2[aby]?\\$[0-9]{2}\\$[./A-Za-z0-9]{53}$" $hash) -}}
{{- fail (printf "web.basicAuth.users.%s: not a bcrypt hash ($2y$10$ and 53 characters; htpasswd -nBC 10 \"\" | tr -d ':\\n'): never put a password here" $name) -}}
{{- end -}}
{{- end -}}
{{- range $i, $env := .Values.extraEnv -}}
{{- if eq $env.name "GOOGLE_APPLICATION_CREDENTIALS" -}}
{{- fail (printf "extraEnv[%d].name: GOOGLE_APPLICATION_CREDENTIALS (a key file) is refused: set workloadIdentity.gcpServiceAccount, and GKE Workload Identity gives the pod its credentials" $i) -}}
{{- end -}}
{{- end -}}
{{- end -}}
