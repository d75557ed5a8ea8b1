"""Writes manifests/catalog/metallb-0.12.3.yaml: the hand-ported templates (body.yaml), the
chart's values.yaml and values.schema.json and the FRR startup files copied from the upstream
chart at v0.12.1 (from the Go module cache, filled by `make e2e-build`).
Run: python3 e2e/catalog-port/metallb-0.12.3/build.py
"""
import os, sys

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(here))
from port import catalog, chart_dir, fill, frr_startup_data, indented, write  # noqa: E402

CHART, APP = "0.12.1", "v0.12.1"
chart = chart_dir(APP)
frr_data = indented(frr_startup_data(chart), 6) + "\n"
body = open(f"{here}/body.yaml").read().replace("      @@FRR_DATA@@\n", frr_data)
body = fill(body, CHART, APP)

values = open(f"{chart}/values.yaml").read()
psp = "psp:\n  # create specifies whether to install and use Pod Security Policies.\n  create: true\n"
assert psp in values
values = values.replace(psp, "psp:\n  # Kommander: PodSecurityPolicy was removed in Kubernetes 1.25; true fails the render.\n  create: false\n")
header = open(f"{here}/header.yaml").read()
schema = open(f"{chart}/values.schema.json").read()
out = catalog(header, values, schema, body)
write("0.12.3", out)
