{{/*
Shared names and labels. Every define is prefixed with the chart name (house style, as in kuberay-operator).
*/}}

{{/* The chart's name, overridable with nameOverride. */}}
{{- define "sovereign.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified release name, truncated to 63 characters because some Kubernetes name fields
are limited to a DNS-1123 label. If the release name already contains the chart name it is used as is.
*/}}
{{- define "sovereign.fullname" -}}
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

{{/* Chart name and version, as used by the helm.sh/chart label. */}}
{{- define "sovereign.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object (Kubernetes recommended labels, "Recommended Labels" in the docs). */}}
{{- define "sovereign.labels" -}}
helm.sh/chart: {{ include "sovereign.chart" . }}
{{ include "sovereign.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: sovereign
{{- end }}

{{/* Selector labels: immutable on a Deployment, so they hold no version. */}}
{{- define "sovereign.selectorLabels" -}}
app.kubernetes.io/name: {{ include "sovereign.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Labels of the operator's pods and the objects that belong to it. */}}
{{- define "sovereign.operatorLabels" -}}
{{ include "sovereign.labels" . }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "sovereign.operatorSelectorLabels" -}}
{{ include "sovereign.selectorLabels" . }}
app.kubernetes.io/component: operator
{{- end }}

{{/* The operator's ServiceAccount; the ClusterRole and ClusterRoleBinding carry the same name. */}}
{{- define "sovereign.operatorServiceAccountName" -}}
{{- printf "%s-operator" (include "sovereign.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The platform namespace (Lease, policy bundle ConfigMap): platformNamespace or the release namespace. */}}
{{- define "sovereign.platformNamespace" -}}
{{- default .Release.Namespace .Values.platformNamespace }}
{{- end }}

{{/*
An image reference from {registry, repository, tag, digest}: the digest wins over the tag (a digest pins
the bytes; Kubernetes docs: "Images", "Image names"). Call with (list .Values.image <default tag> <registry>).
*/}}
{{- define "sovereign.imageRef" -}}
{{- $image := index . 0 }}{{- $defaultTag := index . 1 }}{{- $registry := index . 2 }}
{{- $repository := $image.repository }}
{{- if $registry }}{{- $repository = printf "%s/%s" $registry $image.repository }}{{- end }}
{{- if $image.digest }}
{{- printf "%s@%s" $repository $image.digest }}
{{- else }}
{{- printf "%s:%s" $repository (default $defaultTag $image.tag | toString) }}
{{- end }}
{{- end }}

{{/* The operator's image. */}}
{{- define "sovereign.operatorImage" -}}
{{- include "sovereign.imageRef" (list .Values.image .Chart.AppVersion .Values.image.registry) }}
{{- end }}

{{/*
The nations' Ray image: by default the platform image itself (Ray of the pinned version plus the serving
code: one image for the operator and the serving workloads); its registry, else the operator's (one mirror
serves both).
*/}}
{{- define "sovereign.servingImage" -}}
{{- $registry := default .Values.image.registry .Values.serving.image.registry }}
{{- if .Values.serving.image.repository }}
{{- include "sovereign.imageRef" (list .Values.serving.image .Chart.AppVersion $registry) }}
{{- else }}
{{- include "sovereign.imageRef" (list .Values.image .Chart.AppVersion $registry) }}
{{- end }}
{{- end }}

{{/* Names of the webhook's objects. */}}
{{- define "sovereign.webhookServiceName" -}}
{{- printf "%s-webhook" (include "sovereign.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "sovereign.webhookSecretName" -}}
{{- printf "%s-webhook-tls" (include "sovereign.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
"true" when cert-manager issues the webhook certificate: webhook.certManager.enabled true, or "auto" and
the cluster serves cert-manager.io/v1 (Helm docs: "Built-in Objects", Capabilities.APIVersions.Has).
*/}}
{{- define "sovereign.useCertManager" -}}
{{- $setting := .Values.webhook.certManager.enabled }}
{{- if eq (toString $setting) "auto" }}
{{- if .Capabilities.APIVersions.Has "cert-manager.io/v1" }}true{{ end }}
{{- else if $setting }}true{{ end }}
{{- end }}

{{/* The audit PersistentVolumeClaim's name. */}}
{{- define "sovereign.auditClaimName" -}}
{{- default (printf "%s-audit" (include "sovereign.fullname" .)) .Values.audit.existingClaim }}
{{- end }}
