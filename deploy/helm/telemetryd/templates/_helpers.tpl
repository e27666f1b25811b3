{{/* Names: telemetryd, or RELEASE-telemetryd when the release is not named telemetryd. */}}
{{- define "telemetryd.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "telemetryd.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "telemetryd.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
app.kubernetes.io/name: {{ include "telemetryd.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: telemetryd
{{- end -}}

{{/* Selector labels of one component: include "telemetryd.selector" (list . "processor") */}}
{{- define "telemetryd.selector" -}}
{{- $ := index . 0 -}}
app.kubernetes.io/name: {{ include "telemetryd.name" $ }}
app.kubernetes.io/instance: {{ $.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{- define "telemetryd.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "telemetryd.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "telemetryd.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "telemetryd.secretName" -}}
{{- if .Values.secrets.create -}}
{{- printf "%s-credentials" (include "telemetryd.fullname" .) -}}
{{- else -}}
{{- .Values.secrets.existingSecret -}}
{{- end -}}
{{- end -}}

{{/*
The role file of a component: its `config` map, with kafka.brokers and mongodb.uri filled from
the chart-wide values unless the component's config sets them.
  include "telemetryd.roleFile" (list . "processor" .Values.processor.config)
*/}}
{{- define "telemetryd.roleFile" -}}
{{- $ := index . 0 -}}
{{- $component := index . 1 -}}
{{- $cfg := deepCopy (index . 2) -}}
{{- $defaults := dict -}}
{{- if hasKey $cfg "kafka" -}}
{{- $_ := set $defaults "kafka" (dict "brokers" $.Values.kafka.brokers) -}}
{{- end -}}
{{- if hasKey $cfg "mongodb" -}}
{{- $_ := set $defaults "mongodb" (dict "uri" $.Values.mongodb.uri) -}}
{{- end -}}
{{- $merged := mustMergeOverwrite $defaults $cfg -}}
# The {{ $component }} role file, rendered by the telemetryd chart from its config values.
{{ toYaml $merged }}
{{- end -}}

{{/* Seconds of termination grace: the preStop sleep, the drain, and 5 s for the exit. */}}
{{- define "telemetryd.grace" -}}
{{- $ := index . 0 -}}
{{- $cfg := index . 1 -}}
{{- $drainMs := 10000 -}}
{{- if and (hasKey $cfg "daemon") (hasKey $cfg.daemon "shutdown_timeout_ms") -}}
{{- $drainMs = int $cfg.daemon.shutdown_timeout_ms -}}
{{- end -}}
{{- add (int $.Values.preStopSleepSeconds) (div (add $drainMs 999) 1000) 5 -}}
{{- end -}}

{{/*
The pod spec every component shares: init container check-config, the daemon with probes on
/health and /ready, the role file from its ConfigMap, credentials from the Secret, a writable
/tmp on a read-only root.
  include "telemetryd.podSpec" (dict "root" . "component" "processor" "role" "processor"
    "values" .Values.processor "extraEnv" dict)
Optional "fieldEnv": env name -> pod field path (valueFrom.fieldRef), set in check-config and the
daemon alike, so a role file's ${NAME} resolves the same in both.
*/}}
{{- define "telemetryd.podSpec" -}}
{{- $ := .root -}}
{{- $v := .values -}}
{{- $roleFile := printf "/etc/telemetryd/role/%s.yaml" .role -}}
{{- $secret := include "telemetryd.secretName" $ -}}
serviceAccountName: {{ include "telemetryd.serviceAccountName" $ }}
automountServiceAccountToken: false
{{- with $.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml $.Values.podSecurityContext | nindent 2 }}
terminationGracePeriodSeconds: {{ include "telemetryd.grace" (list $ $v.config) }}
initContainers:
  - name: check-config
    image: {{ include "telemetryd.image" $ }}
    imagePullPolicy: {{ $.Values.image.pullPolicy }}
    args: [check-config, {{ $roleFile | quote }}]
    {{- with .fieldEnv }}
    env:
      {{- range $name, $path := . }}
      - name: {{ $name }}
        valueFrom: {fieldRef: {fieldPath: {{ $path }}}}
      {{- end }}
    {{- end }}
    securityContext:
      {{- toYaml $.Values.securityContext | nindent 6 }}
    resources:
      {{- toYaml $v.resources | nindent 6 }}
    volumeMounts:
      - {name: role, mountPath: /etc/telemetryd/role, readOnly: true}
      {{- if $secret }}
      - {name: secrets, mountPath: {{ $.Values.secretsMountPath }}, readOnly: true}
      {{- end }}
containers:
  - name: telemetryd
    image: {{ include "telemetryd.image" $ }}
    imagePullPolicy: {{ $.Values.image.pullPolicy }}
    args: [run, --role, {{ .role | quote }}, --config, {{ $roleFile | quote }}]
    {{- if or .extraEnv .fieldEnv }}
    env:
      {{- range $name, $path := .fieldEnv }}
      - name: {{ $name }}
        valueFrom: {fieldRef: {fieldPath: {{ $path }}}}
      {{- end }}
      {{- range $name, $value := .extraEnv }}
      - name: {{ $name }}
        value: {{ $value | quote }}
      {{- end }}
    {{- end }}
    ports:
      - {name: http, containerPort: 8000, protocol: TCP}
      {{- if dig "otlp" "enabled" false .values.config }}
      - {name: otlp, containerPort: 4318, protocol: TCP}
      {{- end }}
    livenessProbe:
      httpGet: {path: /health, port: http}
      initialDelaySeconds: 5
      periodSeconds: 10
      timeoutSeconds: 3
      failureThreshold: 3
    readinessProbe:
      httpGet: {path: /ready, port: http}
      periodSeconds: 5
      timeoutSeconds: 3
      failureThreshold: 2
    startupProbe:
      httpGet: {path: /health, port: http}
      periodSeconds: 2
      failureThreshold: 30
    lifecycle:
      preStop:
        # The image has no shell: the kubelet's own sleep action (Kubernetes >= 1.30).
        sleep: {seconds: {{ $.Values.preStopSleepSeconds }}}
    securityContext:
      {{- toYaml $.Values.securityContext | nindent 6 }}
    resources:
      {{- toYaml $v.resources | nindent 6 }}
    volumeMounts:
      - {name: role, mountPath: /etc/telemetryd/role, readOnly: true}
      - {name: tmp, mountPath: /tmp}
      {{- if $secret }}
      - {name: secrets, mountPath: {{ $.Values.secretsMountPath }}, readOnly: true}
      {{- end }}
volumes:
  - name: role
    configMap:
      name: {{ include "telemetryd.fullname" $ }}-{{ .component }}
  - name: tmp
    emptyDir: {sizeLimit: 64Mi}
  {{- if $secret }}
  - name: secrets
    secret:
      secretName: {{ $secret }}
      defaultMode: 0440
  {{- end }}
{{- with $v.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $v.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $v.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}
