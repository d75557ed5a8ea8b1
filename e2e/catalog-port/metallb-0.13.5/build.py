"""Writes manifests/catalog/metallb-0.13.5.yaml: the hand-ported templates (body.yaml), the
chart's values.yaml and values.schema.json, FRR startup files, webhooks and CRDs copied from the
upstream chart at v0.13.5 (from the Go module cache, filled by `make e2e-build`).
Run: python3 e2e/catalog-port/metallb-0.13.5/build.py
"""
import os, sys

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(here))
from port import chart_dir, chart_labels, crs_catalog, fill, frr_startup_data, indented, write  # noqa: E402

CHART, APP = "0.13.5", "v0.13.5"
chart = chart_dir(APP)

frr_data = indented(frr_startup_data(chart), 6) + "\n"
body = open(f"{here}/body.yaml").read().replace("      @@FRR_DATA@@\n", frr_data)
body = fill(body, CHART, APP)

# webhooks: the upstream file with its Go template expressions replaced; its hard-coded
# failurePolicy becomes the value the 0.14+ charts have for it.
wh = open(f"{chart}/templates/webhooks.yaml").read()
assert wh.count("failurePolicy: Fail") == 7
wh = wh.replace("failurePolicy: Fail", "failurePolicy: {{values.crds.validationFailurePolicy}}")
wh = wh.replace("{{ .Release.Namespace }}", "{{release.namespace}}")
wh = chart_labels(wh, CHART, APP)

values = open(f"{chart}/values.yaml").read()
assert values.endswith("crds:\n  enabled: true\n")
values += ("  # Kommander: the webhooks' failurePolicy (Fail in the chart), as in the 0.14+ charts.\n"
           "  validationFailurePolicy: Fail\n")
out = crs_catalog(here, chart, values, body, wh)
write(CHART, out)
