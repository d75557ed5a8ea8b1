"""Writes manifests/catalog/metallb-0.15.2.yaml: the hand-ported templates (body.yaml), the
chart's values.yaml, webhooks and CRDs copied from the upstream chart at v0.15.2 (from the Go
module cache, filled by `make e2e-build`). Run: python3 e2e/catalog-port/metallb-0.15.2/build.py
"""
import os, re, sys

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(here))
from port import NAME, block, chart_dir, fill, indented, labels_block, write  # noqa: E402

CHART, APP = "0.15.2", "v0.15.2"
chart = chart_dir(APP)
body = fill(open(f"{here}/body.yaml").read(), CHART, APP)

# webhooks: the upstream file with its Go template expressions replaced.
wh = open(f"{chart}/templates/webhooks.yaml").read()
wh = wh.replace("{{ .Release.Namespace | quote }}", "{{release.namespace}}").replace("{{ .Release.Namespace }}", "{{release.namespace}}")
wh = wh.replace("{{ .Values.crds.validationFailurePolicy }}", "{{values.crds.validationFailurePolicy}}")
wh = re.sub(r"(\n\s*)\{\{- include \"metallb.labels\" \. \| nindent (\d+) \}\}", lambda m: m.group(1) + labels_block(int(m.group(2)), CHART, APP), wh)
wh = re.sub(r"(\n\s*)\{\{- include \"metallb.selectorLabels\" \. \| nindent (\d+) \}\}", lambda m: m.group(1) + f"app.kubernetes.io/name: {NAME}" + m.group(1) + "app.kubernetes.io/instance: {{release.name}}", wh)
assert "{{ " not in wh and "{{-" not in wh, [l for l in wh.splitlines() if "{{ " in l or "{{-" in l]
# Namespaced objects land in the release namespace anyway; the operator sets it.
wh_lines = [l for l in wh.splitlines() if not re.match(r"^  namespace: \{\{release.namespace\}\}$", l)]
wh = "\n".join(wh_lines) + "\n"

crds = open(f"{chart}/charts/crds/templates/crds.yaml").read()
crds = crds.replace("{{ .Release.Namespace }}", "{{release.namespace}}")
assert "{{ " not in crds

values = open(f"{chart}/values.yaml").read()
kommander_values = open(f"{os.path.dirname(here)}/crs-values.yaml").read()
header = open(f"{here}/header.yaml").read()
schema = open(f"{chart}/values.schema.json").read()
out = (header + "  defaultValues: |\n" + indented(kommander_values + values, 4) + "\n"
       + "  # The chart's values.schema.json, verbatim.\n  valuesSchema: |\n" + indented(schema, 4) + "\n" + body)
out += block("webhooks.yaml", wh)
out += block("crds.yaml", "{{#if values.crds.enabled}}\n" + crds.rstrip("\n") + "\n{{/if}}\n")
write(CHART, out)
