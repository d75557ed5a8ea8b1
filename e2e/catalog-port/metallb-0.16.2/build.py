"""Writes manifests/catalog/metallb-0.16.2.yaml: the upstream MetalLB chart at v0.16.2 (from the
Go module cache, filled by `make e2e-build`) packed into spec.chart.archive with its digest,
Kommander's values and the config.yaml overlay the CR-configured ports share.
Run: python3 e2e/catalog-port/metallb-0.16.2/build.py
"""
import base64, gzip, hashlib, io, os, sys, tarfile

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(here))
from port import chart_dir, indented, write  # noqa: E402

CHART = "0.16.2"
KOMMANDER_LABELS = """# Kommander: the pod labels of metallb-0.12.3, on the chart's own label values.
controller:
  labels:
    app: metallb
    component: controller
speaker:
  labels:
    app: metallb
    component: speaker
"""


def pack(directory, top):
    """The chart directory as a .tgz Helm loads: every file under `top/`, in name order, with
    fixed owner, mode and times (gzip's too), so the same files give the same bytes."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for root, dirs, files in os.walk(directory):
            dirs.sort()
            for name in sorted(files):
                path = os.path.join(root, name)
                data = open(path, "rb").read()
                info = tarfile.TarInfo(f"{top}/{os.path.relpath(path, directory)}")
                info.size, info.mode, info.mtime = len(data), 0o644, 0
                tar.addfile(info, io.BytesIO(data))
    out = io.BytesIO()
    with gzip.GzipFile(filename="", fileobj=out, mode="wb", compresslevel=9, mtime=0) as gz:
        gz.write(raw.getvalue())
    return out.getvalue()


archive = pack(chart_dir(f"v{CHART}"), "metallb")
digest = hashlib.sha256(archive).hexdigest()
catalog = os.path.dirname(here)
header = open(f"{here}/header.yaml").read()
rollout = open(f"{catalog}/metallb-0.15.2/header.yaml").read()
rollout = rollout[rollout.index("  configRollout:"):].replace("metallb-v0.15", "metallb-v0.16")
assert "metallb-v0.16" in rollout
values = open(f"{catalog}/crs-values.yaml").read() + KOMMANDER_LABELS
overlay = open(f"{catalog}/crs-config.yaml").read()
out = (header
       + "apiVersion: apps.kommander.d2iq.io/v1alpha2\nkind: ClusterApp\nmetadata:\n"
       + f"  name: metallb-{CHART}\n  labels:\n    apps.kommander.d2iq.io/app-id: metallb\n"
       + f"spec:\n  appId: metallb\n  version: {CHART}\n"
       + "  clusterScopedKinds: [ClusterRole, ClusterRoleBinding, CustomResourceDefinition, ValidatingWebhookConfiguration]\n"
       + rollout
       + "  defaultValues: |\n" + indented(values, 4) + "\n"
       + "  templates:\n" + overlay
       + f"  chart:\n    name: metallb\n    version: {CHART}\n    digest: sha256:{digest}\n"
       + "    # configInline is for the overlay above: the chart refuses it.\n"
       + "    withheldValues: [configInline]\n"
       + f"    # {len(archive)} bytes: the chart's files, packed by build.py.\n"
       + f"    archive: {base64.b64encode(archive).decode()}\n")
write(CHART, out)
