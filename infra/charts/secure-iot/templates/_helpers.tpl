{{/*
Chart name, truncated to the 63 characters Kubernetes allows in names and label values.
*/}}
{{- define "secure-iot.name" -}}
{{- default "secure-iot-server" .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name of the release's resources.
*/}}
{{- define "secure-iot.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := include "secure-iot.name" . }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Selector labels: stable for the life of the release (Deployment selectors are immutable).
*/}}
{{- define "secure-iot.selectorLabels" -}}
app.kubernetes.io/name: {{ include "secure-iot.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Common labels on every object; app.kubernetes.io/name and part-of are required by the
K8sRequiredLabels Gatekeeper constraint.
*/}}
{{- define "secure-iot.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "secure-iot.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: {{ required "partOf is required (the app.kubernetes.io/part-of label)" .Values.partOf }}
app.kubernetes.io/component: server
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
The ServiceAccount's name.
*/}}
{{- define "secure-iot.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "secure-iot.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The image, BY DIGEST ONLY: "<repository>@sha256:<64 hex>". Rendering fails when the
digest is missing or malformed, when a tag is given, or when the repository already
carries a tag or digest. A tag is a convenience for humans, never an input to a deployment.
*/}}
{{- define "secure-iot.image" -}}
{{- $repository := required "image.repository is required (e.g. 127.0.0.1:5000/secure-iot-server)" .Values.image.repository }}
{{- if .Values.image.tag }}
{{- fail (printf "image.tag=%q is not allowed: images are deployed by digest only; set image.digest (sha256:<64 hex>) and leave image.tag empty" (toString .Values.image.tag)) }}
{{- end }}
{{- $digest := required "image.digest is required: deploy by digest (sha256:<64 hex>) as recorded in out/evidence.json by the build stage" .Values.image.digest }}
{{- if not (regexMatch "^sha256:[a-f0-9]{64}$" (toString $digest)) }}
{{- fail (printf "image.digest=%q is malformed: expected sha256: followed by 64 lowercase hex digits" (toString $digest)) }}
{{- end }}
{{- if or (contains "@" $repository) (regexMatch ":[^/]*$" $repository) }}
{{- fail (printf "image.repository=%q must name a repository only, without a tag or digest (set image.digest)" $repository) }}
{{- end }}
{{- printf "%s@%s" $repository $digest }}
{{- end }}
