{{- define "hwstate.name" -}}
{{- .Chart.Name -}}
{{- end -}}

{{- define "hwstate.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "hwstate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "hwstate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "hwstate.labels" -}}
{{ include "hwstate.selectorLabels" . }}
app.kubernetes.io/part-of: hwstate
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "hwstate.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}
{{- end -}}

{{/* The worker's settings: the values' settings, then what the chart itself mounts. */}}
{{- define "hwstate.settings" -}}
{{- range $k, $v := .Values.settings }}
HWSTATE_{{ $k }}: {{ $v | toString | quote }}
{{- end }}
HWSTATE_HTTP_ADDR: ":8080"
HWSTATE_NATS_URL: {{ .Values.nats.url | quote }}
HWSTATE_NATS_CREDS: /etc/hwstate/nats/{{ .Values.nats.credsKey }}
{{- if .Values.nats.caKey }}
HWSTATE_NATS_CA: /etc/hwstate/nats/{{ .Values.nats.caKey }}
{{- end }}
{{- if .Values.tenants }}
HWSTATE_TENANTS: /etc/hwstate/tenants/tenants.yaml
{{- else }}
HWSTATE_TENANT_ID: {{ .Values.graph.tenantId | quote }}
{{- end }}
HWSTATE_CLIENT_ID: {{ .Values.graph.clientId | quote }}
{{- if eq .Values.graph.credential "certificate" }}
HWSTATE_CLIENT_CERT: /etc/hwstate/graph/{{ .Values.graph.secretKey }}
{{- end }}
{{- end -}}

{{- define "hwstate.kedaAccount" -}}
{{- required "keda.account: the HWSTATE account's public key (nats-auth.sh's HWSTATE.account)" .Values.keda.account -}}
{{- end -}}

{{- define "hwstate.stream" -}}
{{- .Values.settings.STREAM | default "HWSTATE_EVENTS" -}}
{{- end -}}
