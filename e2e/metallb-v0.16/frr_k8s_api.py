#!/usr/bin/env python3
"""The frr-k8s API module MetalLB v0.16.2's controller is built against (see go.mod).

  frr_k8s_api.py   # writes .frr-k8s/ beside this file (git-ignored), from the module proxy

v0.16.2 requires frr-k8s v0.0.27, which the module proxy here does not serve. This takes
v0.0.26 from the module proxy (go.mod and api/, the only package MetalLB imports) and adds the
two names v0.16.2 uses from v0.0.27, for BGP AS-path prepending in frr-k8s mode: the type
AsPathPrependPrefixes and the field Advertise.PrefixesWithAsPathPrepend. Nothing of frr-k8s is
kept in this repository.
"""
import json
import os
import shutil
import subprocess
import sys

here = os.path.dirname(os.path.abspath(__file__))
out = os.path.join(here, ".frr-k8s")
info = json.loads(subprocess.run(
    ["go", "mod", "download", "-json", "github.com/metallb/frr-k8s@v0.0.26"],
    cwd="/", check=True, capture_output=True, text=True).stdout)
shutil.rmtree(out, ignore_errors=True)
os.makedirs(out)
shutil.copy(os.path.join(info["Dir"], "go.mod"), os.path.join(out, "go.mod"))
shutil.copytree(os.path.join(info["Dir"], "api"), os.path.join(out, "api"))
for root, dirs, files in os.walk(out):
    os.chmod(root, 0o755)
    for f in files:
        os.chmod(os.path.join(root, f), 0o644)
types = os.path.join(out, "api", "v1beta1", "frrconfiguration_types.go")
text = open(types).read()
field = '\tPrefixesWithCommunity []CommunityPrefixes `json:"withCommunity,omitempty"`\n'
if field not in text:
    sys.exit("frrconfiguration_types.go: Advertise.PrefixesWithCommunity not found")
text = text.replace(field, field + "\n\t// PrefixesWithAsPathPrepend: prefixes advertised with their AS path prepended.\n"
                    '\tPrefixesWithAsPathPrepend []AsPathPrependPrefixes `json:"withAsPathPrepend,omitempty"`\n', 1)
open(types, "w").write(text)
open(os.path.join(out, "api", "v1beta1", "aspathprepend.go"), "w").write('''package v1beta1

// AsPathPrependPrefixes: prefixes whose AS path is prepended this many times.
type AsPathPrependPrefixes struct {
	Prefixes      []string `json:"prefixes,omitempty"`
	AsPathPrepend uint8    `json:"asPathPrepend,omitempty"`
}
''')
