{{/* Names, labels and the pieces every fleetmedic pod shares. */}}

{{- define "fleetmedic.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The release's prefix for every object: the release name, with the chart's name unless it already contains it. */}}
{{- define "fleetmedic.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* The name of one component's objects: "<fullname>-<component>". */}}
{{- define "fleetmedic.componentName" -}}
{{- printf "%s-%s" (include "fleetmedic.fullname" .root) .component | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "fleetmedic.clusterId" -}}
{{- $id := .Values.clusterId | default .Release.Name -}}
{{- if not (regexMatch "^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$" $id) -}}
{{- fail (printf "clusterId %q must be a DNS label of at most 40 characters" $id) -}}
{{- end -}}
{{- $id -}}
{{- end -}}

{{- define "fleetmedic.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: fleetmedic
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
{{ include "fleetmedic.selectorLabels" . }}
{{- end -}}

{{- define "fleetmedic.selectorLabels" -}}
app.kubernetes.io/name: {{ include "fleetmedic.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "fleetmedic.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}

{{/* The Kubernetes username of the control worker's ServiceAccount (the admission policy matches it). */}}
{{- define "fleetmedic.workerUsername" -}}
{{- printf "system:serviceaccount:%s:%s" .Release.Namespace (include "fleetmedic.componentName" (dict "root" . "component" "worker")) -}}
{{- end -}}

{{- define "fleetmedic.inferenceNamespace" -}}
{{- .Values.inference.namespace | default .Release.Namespace -}}
{{- end -}}

{{/*
The Deployment the gateway fronts, as YAML (namespace, name, port, continuation): gateway.deployment
when it names one, else the chart's example inference Deployment (llama.cpp, so continuation on).
The gateway's Deployment and its Role both read it: the Role grants `get` on exactly this name.
*/}}
{{- define "fleetmedic.gatewayTarget" -}}
{{- $t := .Values.gateway.deployment -}}
{{- if and (not $t.name) (not .Values.inference.enabled) -}}
{{- fail "gateway.deployment.name is required when inference.enabled is false (the gateway fronts one Deployment)" -}}
{{- end -}}
{{- $chartInference := not $t.name -}}
{{- $continuation := .Values.gateway.continuation -}}
{{- if eq (toString $continuation) "auto" -}}
{{- $continuation = $chartInference -}}
{{- else if not (has (toString $continuation) (list "true" "false")) -}}
{{- fail (printf "gateway.continuation must be auto, true or false, got %v" $continuation) -}}
{{- end -}}
namespace: {{ $t.namespace | default (include "fleetmedic.inferenceNamespace" .) | quote }}
name: {{ $t.name | default (include "fleetmedic.componentName" (dict "root" . "component" "inference")) | quote }}
port: {{ $t.port | default .Values.inference.port }}
continuation: {{ eq (toString $continuation) "true" }}
{{- end -}}

{{/* Required node affinity that keeps a pod off every node carrying one of gpuNodeLabels. */}}
{{- define "fleetmedic.offGpuNodes" -}}
nodeAffinity:
  requiredDuringSchedulingIgnoredDuringExecution:
    nodeSelectorTerms:
      - matchExpressions:
          {{- range .Values.gpuNodeLabels }}
          - { key: {{ . | quote }}, operator: DoesNotExist }
          {{- end }}
{{- end -}}

{{/* Spreads a component's replicas over nodes (preferred). */}}
{{- define "fleetmedic.spreadReplicas" -}}
podAntiAffinity:
  preferredDuringSchedulingIgnoredDuringExecution:
    - weight: 100
      podAffinityTerm:
        topologyKey: kubernetes.io/hostname
        labelSelector:
          matchLabels:
            {{- include "fleetmedic.selectorLabels" . | nindent 12 }}
{{- end -}}

{{/* The environment of every process that talks to Temporal and the Kubernetes API (src/config/config.ts). */}}
{{- define "fleetmedic.commonEnv" -}}
- name: FLEETMEDIC_IN_CLUSTER
  value: "true"
- name: FLEETMEDIC_CLUSTER_ID
  value: {{ include "fleetmedic.clusterId" . | quote }}
- name: FLEETMEDIC_LOG_LEVEL
  value: {{ .Values.logLevel | quote }}
- name: FLEETMEDIC_STATE_DIR
  value: /tmp/fleetmedic
- name: FLEETMEDIC_TEMPORAL_ADDRESS
  value: {{ required "temporal.address is required" .Values.temporal.address | quote }}
- name: FLEETMEDIC_TEMPORAL_NAMESPACE
  value: {{ .Values.temporal.namespace | quote }}
{{- with .Values.temporal.uiUrl }}
- name: FLEETMEDIC_TEMPORAL_UI_URL
  value: {{ . | quote }}
{{- end }}
{{- if .Values.temporal.tls.enabled }}
- name: FLEETMEDIC_TEMPORAL_TLS
  value: "true"
{{- with .Values.temporal.tls.serverName }}
- name: FLEETMEDIC_TEMPORAL_TLS_SERVER_NAME
  value: {{ . | quote }}
{{- end }}
{{- if .Values.temporal.tls.caSecret }}
- name: FLEETMEDIC_TEMPORAL_TLS_CA_FILE
  value: /etc/fleetmedic/temporal-ca/ca.crt
{{- end }}
{{- if .Values.temporal.tls.clientCertSecret }}
- name: FLEETMEDIC_TEMPORAL_TLS_CERT_FILE
  value: /etc/fleetmedic/temporal-client/tls.crt
- name: FLEETMEDIC_TEMPORAL_TLS_KEY_FILE
  value: /etc/fleetmedic/temporal-client/tls.key
{{- end }}
{{- else if or .Values.temporal.tls.caSecret .Values.temporal.tls.clientCertSecret }}
{{- fail "temporal.tls.caSecret and temporal.tls.clientCertSecret need temporal.tls.enabled: true" }}
{{- end }}
{{- if .Values.temporal.apiKey.existingSecret }}
{{- if not .Values.temporal.tls.enabled }}
{{- fail "temporal.apiKey needs temporal.tls.enabled: true (an API key is sent over TLS only)" }}
{{- end }}
- name: FLEETMEDIC_TEMPORAL_API_KEY
  valueFrom:
    secretKeyRef:
      name: {{ .Values.temporal.apiKey.existingSecret | quote }}
      key: {{ .Values.temporal.apiKey.key | quote }}
{{- end }}
{{- end -}}

{{- define "fleetmedic.temporalVolumeMounts" -}}
- { name: tmp, mountPath: /tmp }
{{- if and .Values.temporal.tls.enabled .Values.temporal.tls.caSecret }}
- { name: temporal-ca, mountPath: /etc/fleetmedic/temporal-ca, readOnly: true }
{{- end }}
{{- if and .Values.temporal.tls.enabled .Values.temporal.tls.clientCertSecret }}
- { name: temporal-client, mountPath: /etc/fleetmedic/temporal-client, readOnly: true }
{{- end }}
{{- end -}}

{{- define "fleetmedic.temporalVolumes" -}}
- name: tmp
  emptyDir: {}
{{- if and .Values.temporal.tls.enabled .Values.temporal.tls.caSecret }}
- name: temporal-ca
  secret:
    secretName: {{ .Values.temporal.tls.caSecret | quote }}
    items: [{ key: ca.crt, path: ca.crt }]
{{- end }}
{{- if and .Values.temporal.tls.enabled .Values.temporal.tls.clientCertSecret }}
- name: temporal-client
  secret:
    secretName: {{ .Values.temporal.tls.clientCertSecret | quote }}
    items: [{ key: tls.crt, path: tls.crt }, { key: tls.key, path: tls.key }]
{{- end }}
{{- end -}}

{{- define "fleetmedic.podSecurity" -}}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- end -}}
