{{/* Names and labels shared by every template. */}}
{{- define "gadgetwatch.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "gadgetwatch.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains (include "gadgetwatch.name" .) .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "gadgetwatch.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "gadgetwatch.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "gadgetwatch.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "gadgetwatch.selectorLabels" -}}
app.kubernetes.io/name: {{ include "gadgetwatch.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* The console's own name label: the agents' selectors (DaemonSet, NetworkPolicy,
ServiceMonitor) must not match its pods. */}}
{{- define "gadgetwatch.consoleSelectorLabels" -}}
app.kubernetes.io/name: {{ include "gadgetwatch.name" . }}-console
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: console
{{- end -}}

{{/* Where agents post alerts when the console is enabled (the console Service). */}}
{{- define "gadgetwatch.consoleUrl" -}}
{{- $scheme := ternary "https" "http" (ne .Values.console.tlsSecret "") -}}
{{- printf "%s://%s-console.%s.svc:%v/api/v1/alerts" $scheme (include "gadgetwatch.fullname" .) .Release.Namespace .Values.console.service.port -}}
{{- end -}}

{{- define "gadgetwatch.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "gadgetwatch.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* The metrics port, taken from config.metrics.address so the two cannot disagree. */}}
{{- define "gadgetwatch.metricsPort" -}}
{{- splitList ":" .Values.config.metrics.address | last -}}
{{- end -}}

{{/* The agent image: by digest when image.digest is set, else by tag (default: appVersion). */}}
{{- define "gadgetwatch.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}
{{- end -}}

{{/* Where Secret volumes are mounted: outside /etc/gadgetwatch (a read-only ConfigMap mount). */}}
{{- define "gadgetwatch.secretsDir" -}}/var/run/secrets/gadgetwatch{{- end -}}

{{/*
The agent configuration: .Values.config with the paths of the mounted Secrets filled in
(secrets.*.existingSecret). Only file paths go into the ConfigMap, never a secret value.
*/}}
{{- define "gadgetwatch.config" -}}
{{- $config := deepCopy .Values.config -}}
{{- $dir := include "gadgetwatch.secretsDir" . -}}
{{- $s := .Values.secrets -}}
{{- $exporters := get $config "exporters" | default dict -}}
{{- $_ := set $config "exporters" $exporters -}}
{{- with $s.webhook -}}
{{- if .existingSecret -}}
{{- $http := get $exporters "http" | default dict -}}
{{- $_ := set $exporters "http" $http -}}
{{- $files := get $http "headerFiles" | default dict -}}
{{- $_ := set $http "headerFiles" $files -}}
{{- $_ := set $files .header (printf "%s/webhook/%s" $dir .key) -}}
{{- end -}}
{{- end -}}
{{- if .Values.console.enabled -}}
{{- $http := get $exporters "http" | default dict -}}
{{- $_ := set $exporters "http" $http -}}
{{- $_ := set $http "enabled" true -}}
{{- $_ := set $http "url" (include "gadgetwatch.consoleUrl" .) -}}
{{- $files := get $http "headerFiles" | default dict -}}
{{- $_ := set $http "headerFiles" $files -}}
{{- $_ := set $files "Authorization" (printf "%s/console-ingest/%s" $dir .Values.console.ingestKey) -}}
{{- end -}}
{{- with $s.alertmanager -}}
{{- if .existingSecret -}}
{{- $am := get $exporters "alertmanager" | default dict -}}
{{- $_ := set $exporters "alertmanager" $am -}}
{{- if .bearerTokenKey -}}
{{- $_ := set $am "bearerTokenFile" (printf "%s/alertmanager/%s" $dir .bearerTokenKey) -}}
{{- end -}}
{{- if .passwordKey -}}
{{- $_ := set $am "username" .username -}}
{{- $_ := set $am "passwordFile" (printf "%s/alertmanager/%s" $dir .passwordKey) -}}
{{- end -}}
{{- if .caKey -}}
{{- $_ := set $am "caFile" (printf "%s/alertmanager/%s" $dir .caKey) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- with $s.syslogTls -}}
{{- if .existingSecret -}}
{{- $syslog := get $exporters "syslog" | default dict -}}
{{- $_ := set $exporters "syslog" $syslog -}}
{{- if .caKey -}}
{{- $_ := set $syslog "caFile" (printf "%s/syslog-tls/%s" $dir .caKey) -}}
{{- end -}}
{{- if .certKey -}}
{{- $_ := set $syslog "certFile" (printf "%s/syslog-tls/%s" $dir .certKey) -}}
{{- $_ := set $syslog "keyFile" (printf "%s/syslog-tls/%s" $dir .keyKey) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- with $s.igTls -}}
{{- if .existingSecret -}}
{{- $client := get $config "gadgetclient" | default dict -}}
{{- $_ := set $config "gadgetclient" $client -}}
{{- $tls := get $client "tls" | default dict -}}
{{- $_ := set $client "tls" $tls -}}
{{- $_ := set $tls "serverCa" (printf "%s/ig-tls/%s" $dir .caKey) -}}
{{- $_ := set $tls "clientCert" (printf "%s/ig-tls/%s" $dir .certKey) -}}
{{- $_ := set $tls "clientKey" (printf "%s/ig-tls/%s" $dir .keyKey) -}}
{{- end -}}
{{- end -}}
{{- toYaml $config -}}
{{- end -}}

{{/* Secret volumes as (name, secret, mount directory) for the mounts and volumes lists. */}}
{{- define "gadgetwatch.secretVolumes" -}}
{{- $dir := include "gadgetwatch.secretsDir" . -}}
{{- range $name, $secret := dict "webhook" .Values.secrets.webhook "alertmanager" .Values.secrets.alertmanager "syslog-tls" .Values.secrets.syslogTls "ig-tls" .Values.secrets.igTls -}}
{{- if $secret.existingSecret }}
- name: secret-{{ $name }}
  secretName: {{ $secret.existingSecret }}
  mountPath: {{ $dir }}/{{ $name }}
{{- end -}}
{{- end -}}
{{- end -}}
