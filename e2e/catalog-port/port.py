"""Shared by the catalog ports' build.py: the handlebars spellings of the upstream chart's
helpers (metallb.fullname, metallb.name, the ServiceAccount and memberlist Secret names, the
labels), filled into a hand-ported body.yaml at its @@...@@ markers."""
import os, re, subprocess

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "../.."))

FULL = '{{fullname "metallb" release.name values.nameOverride values.fullnameOverride}}'
NAME = '{{chartName "metallb" values.nameOverride}}'
_FULL_SUB = '(fullname "metallb" release.name values.nameOverride values.fullnameOverride)'


def _sa(who):
    return (f'{{{{#if values.{who}.serviceAccount.create}}}}{{{{default (concat {_FULL_SUB} "-{who}") values.{who}.serviceAccount.name}}}}'
            f'{{{{else}}}}{{{{default "default" values.{who}.serviceAccount.name}}}}{{{{/if}}}}')


CTRL_SA = _sa("controller")
SPK_SA = _sa("speaker")
SECRET_SUB = f'(default (concat {_FULL_SUB} "-memberlist") values.speaker.secretName)'
SECRET = "{{" + SECRET_SUB[1:-1] + "}}"


def chart_dir(tag):
    gomod = subprocess.check_output(["go", "env", "GOMODCACHE"], text=True).strip()
    return f"{gomod}/go.universe.tf/metallb@{tag}/charts/metallb"


def labels_block(line_indent, chart_version, app_version):
    pad = " " * line_indent
    return (f"helm.sh/chart: metallb-{chart_version}\n" + pad + f"app.kubernetes.io/name: {NAME}\n" + pad +
            "app.kubernetes.io/instance: {{release.name}}\n" + pad + f'app.kubernetes.io/version: "{app_version}"')


def selector_block(pad):
    return pad + f"app.kubernetes.io/name: {NAME}\n" + pad + "app.kubernetes.io/instance: {{release.name}}"


def fill(body, chart_version, app_version):
    """Replaces the markers: @@CRS_CONFIG@@ (the config.yaml template of the CR-configured
    ports: configInline converted, and the CR-shaped values), @@LABELS4@@ and @@SEL8@@ lines,
    and the names (@@FULL_SUB@@ is fullname as a subexpression)."""
    crs_config = open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "crs-config.yaml")).read()
    body = body.replace("@@CRS_CONFIG@@\n", crs_config)
    out = []
    for line in body.splitlines():
        m = re.match(r"^(\s*)@@LABELS4@@$", line)
        if m:
            out.append(m.group(1) + labels_block(len(m.group(1)), chart_version, app_version))
            continue
        m = re.match(r"^(\s*)@@SEL8@@$", line)
        if m:
            out.append(selector_block(m.group(1)))
            continue
        out.append(line)
    body = "\n".join(out) + "\n"
    body = body.replace("{{quote @@SECRET@@}}", "{{quote " + SECRET_SUB + "}}")
    for marker, text in [("@@FULL_SUB@@", _FULL_SUB), ("@@FULL@@", FULL), ("@@NAME@@", NAME), ("@@CTRL_SA@@", CTRL_SA),
                         ("@@SPK_SA@@", SPK_SA), ("@@SECRET@@", SECRET)]:
        body = body.replace(marker, text)
    assert "@@" not in body, [l for l in body.splitlines() if "@@" in l]
    return body


def indented(text, n):
    pad = " " * n
    return "\n".join((pad + l) if l.strip() else "" for l in text.rstrip("\n").splitlines())


def block(name, text):
    return f"  - name: {name}\n    template: |\n{indented(text, 6)}\n"


def write(version, text):
    """Into manifests/catalog, or the directory $CATALOG_OUT (`make catalog-sync` compares)."""
    path = f"{os.environ.get('CATALOG_OUT', ROOT + '/manifests/catalog')}/metallb-{version}.yaml"
    open(path, "w").write(text)
    print(path, len(text.splitlines()), "lines")


def frr_startup_data(chart):
    """The FRR startup ConfigMap's data in the chart's speaker.yaml, verbatim (daemons,
    vtysh.conf, frr.conf)."""
    speaker = open(f"{chart}/templates/speaker.yaml").read()
    data = re.search(r"\ndata:\n(.*?)\n\{\{- end \}\}", speaker, re.S).group(1)
    assert "{{" not in data
    return data


def chart_labels(text, chart_version, app_version):
    """The chart's `include "metallb.labels"` and `metallb.selectorLabels` lines, spelled out."""
    text = re.sub(r"(\n\s*)\{\{- include \"metallb.labels\" \. \| nindent (\d+) \}\}",
                  lambda m: m.group(1) + labels_block(int(m.group(2)), chart_version, app_version), text)
    text = re.sub(r"(\n\s*)\{\{- include \"metallb.selectorLabels\" \. \| nindent (\d+) \}\}",
                  lambda m: m.group(1) + f"app.kubernetes.io/name: {NAME}" + m.group(1) + "app.kubernetes.io/instance: {{release.name}}", text)
    assert "{{ " not in text and "{{-" not in text, [l for l in text.splitlines() if "{{ " in l or "{{-" in l]
    return text


def crds(chart):
    """The crds subchart's CRDs, with the release namespace in their conversion webhooks."""
    text = open(f"{chart}/charts/crds/templates/crds.yaml").read().replace("{{ .Release.Namespace }}", "{{release.namespace}}")
    assert "{{ " not in text
    return "{{#if values.crds.enabled}}\n" + text.rstrip("\n") + "\n{{/if}}\n"


def catalog(header, values, schema, body):
    """The ClusterApp: header, the chart's values as defaultValues, its values.schema.json as
    valuesSchema, then the templates."""
    return (header + "  defaultValues: |\n" + indented(values, 4) + "\n"
            + "  # The chart's values.schema.json, verbatim.\n  valuesSchema: |\n" + indented(schema, 4) + "\n" + body)


def crs_catalog(port_dir, chart, values, body, webhooks):
    """A CR-configured port (0.13+): its header, Kommander's values before the chart's `values`,
    the chart's schema, the templates, then the webhooks and the CRDs."""
    kommander_values = open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "crs-values.yaml")).read()
    header = open(f"{port_dir}/header.yaml").read()
    schema = open(f"{chart}/values.schema.json").read()
    return (catalog(header, kommander_values + values, schema, body)
            + block("webhooks.yaml", webhooks) + block("crds.yaml", crds(chart)))
