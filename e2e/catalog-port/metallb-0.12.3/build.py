"""Writes manifests/catalog/metallb-0.12.3.yaml: the hand-ported templates (body.yaml), the
chart's values.yaml and values.schema.json and the FRR startup files copied from the upstream
chart at v0.12.1 (from the Go module cache, filled by `make e2e-build`).
Run: python3 e2e/catalog-port/metallb-0.12.3/build.py
"""
import os, re, sys

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(here))
from port import chart_dir, fill, indented, write  # noqa: E402

CHART, APP = "0.12.1", "v0.12.1"
chart = chart_dir(APP)
# The FRR startup ConfigMap's data, verbatim (daemons, vtysh.conf, frr.conf).
speaker = open(f"{chart}/templates/speaker.yaml").read()
frr_data = re.search(r"\ndata:\n(.*?)\n\{\{- end \}\}", speaker, re.S).group(1)
assert "{{" not in frr_data
body = open(f"{here}/body.yaml").read().replace("      @@FRR_DATA@@\n", indented(frr_data, 6) + "\n")
body = fill(body, CHART, APP)

values = open(f"{chart}/values.yaml").read()
psp = "psp:\n  # create specifies whether to install and use Pod Security Policies.\n  create: true\n"
assert psp in values
values = values.replace(psp, "psp:\n  # Kommander: PodSecurityPolicy was removed in Kubernetes 1.25; true fails the render.\n  create: false\n")
header = open(f"{here}/header.yaml").read()
schema = open(f"{chart}/values.schema.json").read()
out = (header + "  defaultValues: |\n" + indented(values, 4) + "\n"
       + "  # The chart's values.schema.json, verbatim.\n  valuesSchema: |\n" + indented(schema, 4) + "\n" + body)
write("0.12.3", out)
