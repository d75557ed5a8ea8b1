"""Writes manifests/catalog/metallb-0.15.2.yaml: the hand-ported templates (body.yaml), the
chart's values.yaml, webhooks and CRDs copied from the upstream chart at v0.15.2 (from the Go
module cache, filled by `make e2e-build`). Run: python3 e2e/catalog-port/metallb-0.15.2/build.py
"""
import os, re, sys

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(here))
from port import chart_dir, chart_labels, crs_catalog, fill, write  # noqa: E402

CHART, APP = "0.15.2", "v0.15.2"
chart = chart_dir(APP)
body = fill(open(f"{here}/body.yaml").read(), CHART, APP)

# webhooks: the upstream file with its Go template expressions replaced.
wh = open(f"{chart}/templates/webhooks.yaml").read()
wh = wh.replace("{{ .Release.Namespace | quote }}", "{{release.namespace}}").replace("{{ .Release.Namespace }}", "{{release.namespace}}")
wh = wh.replace("{{ .Values.crds.validationFailurePolicy }}", "{{values.crds.validationFailurePolicy}}")
wh = chart_labels(wh, CHART, APP)
# Namespaced objects land in the release namespace anyway; the operator sets it.
wh_lines = [l for l in wh.splitlines() if not re.match(r"^  namespace: \{\{release.namespace\}\}$", l)]
wh = "\n".join(wh_lines) + "\n"

values = open(f"{chart}/values.yaml").read()
out = crs_catalog(here, chart, values, body, wh)
write(CHART, out)
