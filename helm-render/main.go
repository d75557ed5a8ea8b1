// Command kommander-helm-render renders one Helm chart with Helm's own engine (helm.sh/helm/v3
// v3.22.0), for kommander-operator: the same calls `helm template` and `helm install` make,
// so the output is Helm's, byte for byte.
//
// One JSON request on stdin, one JSON answer on stdout (see request and answer). It opens no
// file and makes no network request: the chart arrives as a .tgz in the request, and the
// engine has no cluster client, so `lookup` returns nothing. Its heap is bounded by
// --max-memory (see watchdog.go); its time is bounded by the process that runs it.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"sync"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	"helm.sh/helm/v3/pkg/release"
	"helm.sh/helm/v3/pkg/releaseutil"
	"sigs.k8s.io/yaml"
)

// request is what to render.
type request struct {
	// Chart is the chart's .tgz (base64 in JSON).
	Chart []byte `json:"chart"`
	// ValueLayers are YAML documents merged in order the way `helm template -f 1 -f 2` merges
	// its files, then coalesced over the chart's values.yaml by Helm.
	ValueLayers []string `json:"valueLayers"`
	Release     struct {
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
		Revision  int    `json:"revision"`
		// IsUpgrade: the release is already on the cluster (.Release.IsUpgrade); else an install.
		IsUpgrade bool `json:"isUpgrade"`
	} `json:"release"`
	// KubeVersion is the target cluster's version (.Capabilities.KubeVersion).
	KubeVersion string `json:"kubeVersion"`
	// APIVersions are the target cluster's API versions (.Capabilities.APIVersions).
	APIVersions []string `json:"apiVersions"`
	// HelmDefaultAPIVersions adds Helm's built-in list to APIVersions, as `helm template`
	// does; without it the list is the cluster's alone, as `helm install` sees it.
	HelmDefaultAPIVersions bool `json:"helmDefaultAPIVersions"`
	// MaxOutputBytes bounds the rendered text (manifests, hooks and CRDs together).
	MaxOutputBytes int `json:"maxOutputBytes"`
}

// file is one rendered manifest or CRD, with the chart path Helm names it by.
type file struct {
	Path    string `json:"path"`
	Content string `json:"content"`
}

// hook is one rendered hook, as Helm's manifest sorter classifies it.
type hook struct {
	Path           string   `json:"path"`
	Name           string   `json:"name"`
	Kind           string   `json:"kind"`
	Manifest       string   `json:"manifest"`
	Events         []string `json:"events"`
	Weight         int      `json:"weight"`
	DeletePolicies []string `json:"deletePolicies"`
}

// chartInfo is what the operator shows and checks of the chart itself.
type chartInfo struct {
	Name        string `json:"name"`
	Version     string `json:"version"`
	AppVersion  string `json:"appVersion,omitempty"`
	KubeVersion string `json:"kubeVersion,omitempty"`
}

// failure says why nothing was rendered. Kind is one of: request, chart, values, schema,
// kubeVersion, render, manifest, output, memory.
type failure struct {
	Kind    string `json:"kind"`
	Message string `json:"message"`
}

type answer struct {
	Chart     *chartInfo             `json:"chart,omitempty"`
	Values    map[string]interface{} `json:"values,omitempty"`
	CRDs      []file                 `json:"crds"`
	Manifests []file                 `json:"manifests"`
	Hooks     []hook                 `json:"hooks"`
	Notes     string                 `json:"notes"`
	Error     *failure               `json:"error,omitempty"`
}

func main() {
	maxMemory := flag.Int64("max-memory", 512<<20, "heap bound in bytes; past it the render stops with kind memory")
	flag.Parse()
	startWatchdog(*maxMemory)

	var req request
	in, err := io.ReadAll(os.Stdin)
	if err == nil {
		err = json.Unmarshal(in, &req)
	}
	var out answer
	if err != nil {
		out = answer{Error: &failure{"request", fmt.Sprintf("unreadable request: %v", err)}}
	} else {
		out = render(&req)
	}
	reply(out)
	if out.Error != nil {
		os.Exit(1)
	}
}

var replied sync.Once

// reply writes the answer, once: the watchdog and the render may both finish. It says whether
// this call wrote it. An answer that cannot be written is an internal fault (exit 2).
func reply(out answer) bool {
	wrote := false
	replied.Do(func() {
		wrote = true
		if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
			fmt.Fprintf(os.Stderr, "cannot write the answer: %v\n", err)
			os.Exit(2)
		}
	})
	return wrote
}

func fail(kind string, err error) answer {
	return answer{Error: &failure{kind, err.Error()}}
}

// render makes the calls `helm install --dry-run` (and so `helm template`) makes, in its order.
func render(req *request) answer {
	chrt, err := loader.LoadArchive(bytes.NewReader(req.Chart))
	if err != nil {
		return fail("chart", fmt.Errorf("the chart archive cannot be loaded: %w", err))
	}
	if err := installable(chrt); err != nil {
		return fail("chart", err)
	}
	vals, err := mergeLayers(req.ValueLayers)
	if err != nil {
		return fail("values", err)
	}
	if err := chartutil.ProcessDependenciesWithMerge(chrt, vals); err != nil {
		return fail("chart", err)
	}
	caps, err := capabilities(req)
	if err != nil {
		return fail("request", err)
	}
	options := chartutil.ReleaseOptions{
		Name:      req.Release.Name,
		Namespace: req.Release.Namespace,
		Revision:  max(req.Release.Revision, 1),
		IsInstall: !req.Release.IsUpgrade,
		IsUpgrade: req.Release.IsUpgrade,
	}
	top, err := chartutil.ToRenderValuesWithSchemaValidation(chrt, vals, options, caps, false)
	if err != nil {
		kind := "values"
		if strings.Contains(err.Error(), "schema") {
			kind = "schema"
		}
		return fail(kind, err)
	}
	if chrt.Metadata.KubeVersion != "" && !chartutil.IsCompatibleRange(chrt.Metadata.KubeVersion, caps.KubeVersion.String()) {
		return fail("kubeVersion", fmt.Errorf("chart requires kubeVersion: %s which is incompatible with Kubernetes %s", chrt.Metadata.KubeVersion, caps.KubeVersion.String()))
	}
	var e engine.Engine
	files, err := e.Render(chrt, top)
	if err != nil {
		return fail("render", err)
	}
	return sorted(req, chrt, top, files)
}

// sorted splits the rendered files the way Helm does: NOTES.txt out, then hooks and manifests
// in Helm's install order; the chart's crds/ files beside them.
func sorted(req *request, chrt *chart.Chart, top chartutil.Values, files map[string]string) answer {
	notes := notesOf(chrt, files)
	hooks, manifests, err := releaseutil.SortManifests(files, nil, releaseutil.InstallOrder)
	if err != nil {
		return fail("manifest", err)
	}
	out := answer{
		Chart: &chartInfo{
			Name:        chrt.Metadata.Name,
			Version:     chrt.Metadata.Version,
			AppVersion:  chrt.Metadata.AppVersion,
			KubeVersion: chrt.Metadata.KubeVersion,
		},
		CRDs:      []file{},
		Manifests: []file{},
		Hooks:     []hook{},
		Notes:     notes,
	}
	if v, ok := top["Values"].(chartutil.Values); ok {
		out.Values = v.AsMap()
	}
	size := 0
	for _, crd := range chrt.CRDObjects() {
		out.CRDs = append(out.CRDs, file{crd.Filename, string(crd.File.Data)})
		size += len(crd.File.Data)
	}
	for _, m := range manifests {
		out.Manifests = append(out.Manifests, file{m.Name, m.Content})
		size += len(m.Content)
	}
	for _, h := range hooks {
		out.Hooks = append(out.Hooks, hookOf(h))
		size += len(h.Manifest)
	}
	if req.MaxOutputBytes > 0 && size > req.MaxOutputBytes {
		return fail("output", fmt.Errorf("the chart rendered %d bytes, more than the limit of %d", size, req.MaxOutputBytes))
	}
	return out
}

// installable refuses what `helm install` refuses before rendering: a library chart, and a
// dependency Chart.yaml names that charts/ does not hold.
func installable(chrt *chart.Chart) error {
	if t := chrt.Metadata.Type; t != "" && t != "application" {
		return fmt.Errorf("%s charts are not installable", t)
	}
	present := map[string]bool{}
	for _, sub := range chrt.Dependencies() {
		present[sub.Name()] = true
	}
	var missing []string
	for _, dep := range chrt.Metadata.Dependencies {
		if !present[dep.Name] {
			missing = append(missing, dep.Name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("found in Chart.yaml, but missing in charts/ directory: %s", strings.Join(missing, ", "))
	}
	return nil
}

// hookOf is a hook as the answer carries it.
func hookOf(h *release.Hook) hook {
	out := hook{Path: h.Path, Name: h.Name, Kind: h.Kind, Manifest: h.Manifest, Weight: h.Weight,
		Events: []string{}, DeletePolicies: []string{}}
	for _, e := range h.Events {
		out.Events = append(out.Events, string(e))
	}
	for _, p := range h.DeletePolicies {
		out.DeletePolicies = append(out.DeletePolicies, string(p))
	}
	return out
}

// notesOf takes NOTES.txt files out of the rendered set; the top chart's is kept, as
// `helm install` keeps it (subcharts' notes only with --render-subchart-notes).
func notesOf(chrt *chart.Chart, files map[string]string) string {
	var notes string
	for name, content := range files {
		if strings.HasSuffix(name, "NOTES.txt") {
			if name == path.Join(chrt.Name(), "templates", "NOTES.txt") {
				notes = content
			}
			delete(files, name)
		}
	}
	return notes
}

// mergeLayers merges YAML layers as Helm merges -f files: maps recursively, anything else
// (lists, scalars, null) replaces what was there. Coalescing over the chart's values.yaml,
// where null deletes, is Helm's next step (ToRenderValues).
func mergeLayers(layers []string) (map[string]interface{}, error) {
	base := map[string]interface{}{}
	for i, text := range layers {
		layer := map[string]interface{}{}
		if err := yaml.Unmarshal([]byte(text), &layer); err != nil {
			return nil, fmt.Errorf("value layer %d is not a YAML map: %w", i+1, err)
		}
		base = mergeInto(base, layer)
	}
	return base, nil
}

func mergeInto(dst, src map[string]interface{}) map[string]interface{} {
	out := make(map[string]interface{}, len(dst))
	for k, v := range dst {
		out[k] = v
	}
	for k, v := range src {
		srcMap, srcIsMap := v.(map[string]interface{})
		dstMap, dstIsMap := out[k].(map[string]interface{})
		if srcIsMap && dstIsMap {
			out[k] = mergeInto(dstMap, srcMap)
		} else {
			out[k] = v
		}
	}
	return out
}

// capabilities are the target cluster's, or `helm template`'s when asked for Helm's defaults.
func capabilities(req *request) (*chartutil.Capabilities, error) {
	caps := chartutil.DefaultCapabilities.Copy()
	if req.KubeVersion != "" {
		kv, err := chartutil.ParseKubeVersion(req.KubeVersion)
		if err != nil {
			return nil, fmt.Errorf("invalid kube version %q: %w", req.KubeVersion, err)
		}
		caps.KubeVersion = *kv
	}
	if req.HelmDefaultAPIVersions {
		caps.APIVersions = append(caps.APIVersions, req.APIVersions...)
	} else {
		caps.APIVersions = chartutil.VersionSet(req.APIVersions)
	}
	return caps, nil
}
