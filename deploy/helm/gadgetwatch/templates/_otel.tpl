{{/*
OpenTelemetry export (values `otel`) and the debug endpoints (values `debug`), wired into the
agent container through the environment (which overrides config.yaml, docs/configuration.md)
and read-only Secret mounts. Kept in one file so the DaemonSet only includes three snippets.
*/}}

{{- define "gadgetwatch.otel.env" -}}
{{- with .Values.otel }}
{{- if .enabled }}
- name: GADGETWATCH_EXPORTERS__OTLP__ENABLED
  value: "true"
- name: GADGETWATCH_EXPORTERS__OTLP__HOST
  value: {{ required "otel.endpoint.host is required when otel.enabled" .endpoint.host | quote }}
- name: GADGETWATCH_EXPORTERS__OTLP__PORT
  value: {{ .endpoint.port | quote }}
- name: GADGETWATCH_EXPORTERS__OTLP__INSECURE
  value: {{ .endpoint.insecure | quote }}
- name: GADGETWATCH_EXPORTERS__OTLP__PROTOCOL
  value: {{ .protocol | quote }}
{{- if .headersSecret }}
- name: GADGETWATCH_EXPORTERS__OTLP__HEADERS_DIR
  value: /etc/gadgetwatch-otel/headers
{{- end }}
{{- if .caSecret }}
- name: GADGETWATCH_EXPORTERS__OTLP__CA_FILE
  value: /etc/gadgetwatch-otel/ca/ca.crt
{{- end }}
{{- if .exportMetrics }}
- name: GADGETWATCH_EXPORTERS__OTLP__EXPORT_METRICS
  value: "true"
{{- end }}
{{- if .resourceAttributes }}
- name: GADGETWATCH_EXPORTERS__OTLP__RESOURCE_ATTRIBUTES
  value: {{ toJson .resourceAttributes | quote }}
{{- end }}
{{- end }}
{{- end }}
{{- if .Values.debug.enabled }}
- name: GADGETWATCH_DEBUG_ENDPOINTS
  value: "1"
- name: GADGETWATCH_DEBUG__ADDRESS
  value: {{ .Values.debug.address | quote }}
{{- end }}
{{- end -}}

{{- define "gadgetwatch.otel.volumeMounts" -}}
{{- if and .Values.otel.enabled .Values.otel.headersSecret }}
- name: otel-headers
  mountPath: /etc/gadgetwatch-otel/headers
  readOnly: true
{{- end }}
{{- if and .Values.otel.enabled .Values.otel.caSecret }}
- name: otel-ca
  mountPath: /etc/gadgetwatch-otel/ca
  readOnly: true
{{- end }}
{{- end -}}

{{- define "gadgetwatch.otel.volumes" -}}
{{- if and .Values.otel.enabled .Values.otel.headersSecret }}
- name: otel-headers
  secret:
    secretName: {{ .Values.otel.headersSecret }}
{{- end }}
{{- if and .Values.otel.enabled .Values.otel.caSecret }}
- name: otel-ca
  secret:
    secretName: {{ .Values.otel.caSecret }}
    items:
      - key: ca.crt
        path: ca.crt
{{- end }}
{{- end -}}
