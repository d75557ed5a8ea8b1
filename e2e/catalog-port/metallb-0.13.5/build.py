"""Writes manifests/catalog/metallb-0.13.5.yaml: the hand-ported templates (body.yaml), the
chart's values.yaml and values.schema.json, FRR startup files, webhooks and CRDs copied from the
upstream chart at v0.13.5 (from the Go module cache, filled by `make e2e-build`).
Run: python3 e2e/catalog-port/metallb-0.13.5/build.py
"""
import os, re, sys

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(here))
from port import NAME, block, chart_dir, fill, indented, labels_block, write  # noqa: E402

CHART, APP = "0.13.5", "v0.13.5"
chart = chart_dir(APP)

# The FRR startup ConfigMap's data, verbatim (daemons, vtysh.conf, frr.conf).
speaker = open(f"{chart}/templates/speaker.yaml").read()
frr_data = re.search(r"\ndata:\n(.*?)\n\{\{- end \}\}", speaker, re.S).group(1)
assert "{{" not in frr_data
body = open(f"{here}/body.yaml").read().replace("      @@FRR_DATA@@\n", indented(frr_data, 6) + "\n")
body = fill(body, CHART, APP)

# webhooks: the upstream file with its Go template expressions replaced; its hard-coded
# failurePolicy becomes the value the 0.14+ charts have for it.
wh = open(f"{chart}/templates/webhooks.yaml").read()
assert wh.count("failurePolicy: Fail") == 7
wh = wh.replace("failurePolicy: Fail", "failurePolicy: {{values.crds.validationFailurePolicy}}")
wh = wh.replace("{{ .Release.Namespace }}", "{{release.namespace}}")
wh = re.sub(r"(\n\s*)\{\{- include \"metallb.labels\" \. \| nindent (\d+) \}\}", lambda m: m.group(1) + labels_block(int(m.group(2)), CHART, APP), wh)
wh = re.sub(r"(\n\s*)\{\{- include \"metallb.selectorLabels\" \. \| nindent (\d+) \}\}", lambda m: m.group(1) + f"app.kubernetes.io/name: {NAME}" + m.group(1) + "app.kubernetes.io/instance: {{release.name}}", wh)
assert "{{ " not in wh and "{{-" not in wh, [l for l in wh.splitlines() if "{{ " in l or "{{-" in l]

crds = open(f"{chart}/charts/crds/templates/crds.yaml").read()
crds = crds.replace("{{ .Release.Namespace }}", "{{release.namespace}}")
assert "{{ " not in crds

values = open(f"{chart}/values.yaml").read()
assert values.endswith("crds:\n  enabled: true\n")
values += ("  # Kommander: the webhooks' failurePolicy (Fail in the chart), as in the 0.14+ charts.\n"
           "  validationFailurePolicy: Fail\n")
kommander_values = open(f"{os.path.dirname(here)}/crs-values.yaml").read()
header = open(f"{here}/header.yaml").read()
schema = open(f"{chart}/values.schema.json").read()
out = (header + "  defaultValues: |\n" + indented(kommander_values + values, 4) + "\n"
       + "  # The chart's values.schema.json, verbatim.\n  valuesSchema: |\n" + indented(schema, 4) + "\n" + body)
out += block("webhooks.yaml", wh)
out += block("crds.yaml", "{{#if values.crds.enabled}}\n" + crds.rstrip("\n") + "\n{{/if}}\n")
write(CHART, out)
