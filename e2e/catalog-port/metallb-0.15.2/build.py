"""Writes manifests/catalog/metallb-0.15.2.yaml: the hand-ported templates (body.yaml), the
chart's values.yaml, webhooks and CRDs copied from the upstream chart at v0.15.2 (from the Go
module cache, filled by `make e2e-build`). Run: python3 e2e/catalog-port/metallb-0.15.2/build.py
"""
import os, re, subprocess

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.normpath(os.path.join(here, "../../.."))
gomod = subprocess.check_output(["go", "env", "GOMODCACHE"], text=True).strip()
chart = f"{gomod}/go.universe.tf/metallb@v0.15.2/charts/metallb"
body = open(f"{here}/body.yaml").read()

FULL = '{{fullname "metallb" release.name values.nameOverride values.fullnameOverride}}'
NAME = '{{chartName "metallb" values.nameOverride}}'
CTRL_SA = ('{{#if values.controller.serviceAccount.create}}{{default (concat (fullname "metallb" release.name values.nameOverride values.fullnameOverride) "-controller") values.controller.serviceAccount.name}}'
           '{{else}}{{default "default" values.controller.serviceAccount.name}}{{/if}}')
SPK_SA = ('{{#if values.speaker.serviceAccount.create}}{{default (concat (fullname "metallb" release.name values.nameOverride values.fullnameOverride) "-speaker") values.speaker.serviceAccount.name}}'
          '{{else}}{{default "default" values.speaker.serviceAccount.name}}{{/if}}')
SECRET = '{{default (concat (fullname "metallb" release.name values.nameOverride values.fullnameOverride) "-memberlist") values.speaker.secretName}}'
SECRET_SUB = '(default (concat (fullname "metallb" release.name values.nameOverride values.fullnameOverride) "-memberlist") values.speaker.secretName)'

def labels_block(line_indent):
    pad = " " * line_indent
    return ("helm.sh/chart: metallb-0.15.2\n" + pad + f"app.kubernetes.io/name: {NAME}\n" + pad +
            "app.kubernetes.io/instance: {{release.name}}\n" + pad + 'app.kubernetes.io/version: "v0.15.2"')

def sub_labels(text):
    out = []
    for line in text.splitlines():
        m = re.match(r"^(\s*)@@LABELS4@@$", line)
        if m:
            out.append(m.group(1) + labels_block(len(m.group(1))))
            continue
        m = re.match(r"^(\s*)@@SEL8@@$", line)
        if m:
            p = m.group(1)
            out.append(p + f"app.kubernetes.io/name: {NAME}\n" + p + "app.kubernetes.io/instance: {{release.name}}")
            continue
        out.append(line)
    return "\n".join(out) + "\n"

body = sub_labels(body)
body = body.replace("{{quote @@SECRET@@}}", "{{quote " + SECRET_SUB + "}}")
body = body.replace("@@FULL@@", FULL).replace("@@NAME@@", NAME).replace("@@CTRL_SA@@", CTRL_SA).replace("@@SPK_SA@@", SPK_SA).replace("@@SECRET@@", SECRET)
assert "@@" not in body, [l for l in body.splitlines() if "@@" in l]

# webhooks: the upstream file with its Go template expressions replaced.
wh = open(f"{chart}/templates/webhooks.yaml").read()
wh = wh.replace("{{ .Release.Namespace | quote }}", "{{release.namespace}}").replace("{{ .Release.Namespace }}", "{{release.namespace}}")
wh = wh.replace("{{ .Values.crds.validationFailurePolicy }}", "{{values.crds.validationFailurePolicy}}")
wh = re.sub(r"(\n\s*)\{\{- include \"metallb.labels\" \. \| nindent (\d+) \}\}", lambda m: m.group(1) + labels_block(int(m.group(2))), wh)
wh = re.sub(r"(\n\s*)\{\{- include \"metallb.selectorLabels\" \. \| nindent (\d+) \}\}", lambda m: m.group(1) + f"app.kubernetes.io/name: {NAME}" + m.group(1) + "app.kubernetes.io/instance: {{release.name}}", wh)
assert "{{ " not in wh and "{{-" not in wh, [l for l in wh.splitlines() if "{{ " in l or "{{-" in l]
# Namespaced objects land in the release namespace anyway; the operator sets it.
wh_lines = [l for l in wh.splitlines() if not re.match(r"^  namespace: \{\{release.namespace\}\}$", l)]
wh = "\n".join(wh_lines) + "\n"

crds = open(f"{chart}/charts/crds/templates/crds.yaml").read()
crds = crds.replace("{{ .Release.Namespace }}", "{{release.namespace}}")
assert "{{ " not in crds

def block(name, text):
    ind = "      "
    lines = "\n".join((ind + l) if l.strip() else "" for l in text.rstrip("\n").splitlines())
    return f"  - name: {name}\n    template: |\n{lines}\n"

values = open(f"{chart}/values.yaml").read()
kommander_values = open(f"{here}/values-extra.yaml").read()
header = open(f"{here}/header.yaml").read()
vals = "\n".join(("    " + l) if l.strip() else "" for l in (kommander_values + values).rstrip("\n").splitlines())
schema = open(f"{chart}/values.schema.json").read()
schema_block = "\n".join(("    " + l) if l.strip() else "" for l in schema.rstrip("\n").splitlines())
out = header + "  defaultValues: |\n" + vals + "\n" + "  # The chart's values.schema.json, verbatim.\n  valuesSchema: |\n" + schema_block + "\n" + body
out += block("webhooks.yaml", wh)
out += block("crds.yaml", "{{#if values.crds.enabled}}\n" + crds.rstrip("\n") + "\n{{/if}}\n")
open(f"{root}/manifests/catalog/metallb-0.15.2.yaml", "w").write(out)
print(len(out.splitlines()), "lines")
