# kommander-operator. `make demo` and `make test` are the two commands a newcomer needs.
SHELL := /bin/bash
CARGO ?= cargo
BIN := target/release/kommander-operator
CATALOG := manifests/catalog/metallb-0.12.3.yaml
GO ?= go
CLUSTERS := management attached-1 attached-2

.PHONY: bench-render bench-operator bench-memory bench-watch bench-metallb bench-scale bench-helm
.PHONY: all build test lint check-paths module-graph fmt-check clippy go-lint unit catalog-sync crds bench demo demo-offline clean \
	e2e-build e2e e2e-smoke e2e-operator e2e-security e2e-metallb e2e-oracle e2e-helm e2e-chaos chaos oracle cluster-up cluster-down cluster-status

all: build

## build: the operator, and beside it Helm's engine (kommander-helm-render) that renders chart apps
HELM_LDFLAGS := -X helm.sh/helm/v3/internal/version.version=v3.22.0
build:
	$(CARGO) build --release --bin kommander-operator
	cd helm-render && $(GO) build -ldflags "$(HELM_LDFLAGS)" -o ../target/release/kommander-helm-render .

## test: formatting, lints, unit tests, then end to end: the control plane, the operator (what CI runs)
test: lint unit catalog-sync e2e-smoke e2e

## lint: no tracked file names a path outside the repository, no two modules import each other
## (round any cycle), then formatting and lints
lint: check-paths module-graph fmt-check clippy go-lint

check-paths:
	python3 tools/check_paths.py

module-graph:
	python3 tools/module_graph.py --self-test
	python3 tools/module_graph.py

fmt-check:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

go-lint:
	@out="$$(gofmt -l helm-render e2e/controlplane e2e/metallb e2e/metallb-v0.13 e2e/metallb-v0.15 e2e/metallb-v0.16 e2e/helm)"; [ -z "$$out" ] || { echo "gofmt needed: $$out"; exit 1; }
	cd e2e/controlplane && $(GO) vet ./...
	cd helm-render && $(GO) vet ./...

## unit: every test that needs no cluster (the e2e_ test runs in e2e-operator)
unit:
	$(CARGO) test --workspace -- --skip e2e_

## e2e-build: the embedded control plane (real kube-apiserver, controller-manager, scheduler)
K8S_VERSION := v1.34.4
K8S_LDFLAGS := -X k8s.io/component-base/version.gitVersion=$(K8S_VERSION) \
	-X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=34 \
	-X k8s.io/client-go/pkg/version.gitVersion=$(K8S_VERSION)
e2e-build:
	cd e2e/controlplane && $(GO) build -ldflags "$(K8S_LDFLAGS)" -o ../bin/controlplane .
	cd e2e/metallb && $(GO) build -o ../bin/metallb-controller go.universe.tf/metallb/controller
	cd e2e/metallb-v0.13 && $(GO) build -o ../bin/metallb-controller-v0.13 go.universe.tf/metallb/controller
	cd e2e/metallb-v0.15 && $(GO) build -o ../bin/metallb-controller-v0.15 go.universe.tf/metallb/controller
	cd e2e/metallb-v0.16 && python3 frr_k8s_api.py && $(GO) build -o ../bin/metallb-controller-v0.16 go.universe.tf/metallb/controller
	cd e2e/helm && $(GO) build -ldflags "$(HELM_LDFLAGS)" -o ../bin/helm helm.sh/helm/v3/cmd/helm
	cd helm-render && $(GO) build -ldflags "$(HELM_LDFLAGS)" -o ../e2e/bin/kommander-helm-render .

## catalog-sync: the MetalLB catalog apps (and the chart metallb-0.16.2 carries) are exactly what e2e/catalog-port generates from the upstream charts
catalog-sync: e2e-build
	@out="$$(mktemp -d)"; for b in e2e/catalog-port/metallb-*/build.py; do CATALOG_OUT="$$out" python3 "$$b" >/dev/null || exit 1; done; \
	for f in "$$out"/*.yaml; do cmp -s "$$f" "manifests/catalog/$$(basename "$$f")" || { echo "manifests/catalog/$$(basename "$$f") differs from what e2e/catalog-port generates"; exit 1; }; done; \
	echo "catalog-sync: $$(ls "$$out" | wc -l) MetalLB catalog apps match e2e/catalog-port"; rm -rf "$$out"

## e2e-smoke: three clusters, real kubectl: Deployments roll out and are garbage-collected
e2e-smoke: e2e-build
	e2e/smoke.sh

## e2e: every suite below, E2E_JOBS test binaries at a time. They mostly wait on clusters (one
## keeps 2 cores about 18% busy), each on clusters of its own. e2e-smoke runs alone before: it
## checks that no cluster process is left on the machine.
E2E_JOBS ?= 3
e2e: e2e-build
	$(MAKE) --no-print-directory -j$(E2E_JOBS) --output-sync=target E2E_BUILD= e2e-operator e2e-security e2e-metallb e2e-oracle e2e-helm e2e-chaos

## suite-NAME: one end-to-end test binary, operator/tests/NAME.rs (after e2e-build, which `make
## e2e` has done once already: Go links its binaries again even when nothing changed)
E2E_BUILD ?= e2e-build
suite-%: $(E2E_BUILD)
	$(CARGO) test -p kommander-operator --test $* -- --nocapture

## e2e-operator: the operator against four embedded clusters (scenarios and 16 bad inputs), and
## rollouts in steps (a pause lifted, a failing canary halting, a newer config, an unreachable cluster)
e2e-operator: suite-e2e suite-rollout

## e2e-security: a tenant's attacks, with its own token, against the operator under its shipped RBAC
e2e-security: suite-security

## e2e-metallb: the config gate with the real MetalLB v0.12.1, v0.13.5, v0.15.2 and v0.16.2 (the catalog's metallb-0.16.2: the upstream chart) controllers in the loop, the upgrade from 0.12.3, pool capacity and node subnets (pools), the strictARP fix (strict_arp), a held change holding its rollout step (metallb_steps), one range on clusters of one layer-2 segment (fleet_addresses)
e2e-metallb: suite-metallb suite-metallb_v013 suite-metallb_v015 suite-metallb_v016 suite-metallb_upgrade suite-pools suite-strict_arp suite-metallb_steps suite-fleet_addresses

## e2e-oracle: the real MetalLB v0.12.1, v0.13.5, v0.15.2 and v0.16.2 controllers vs our checks (20 fixed scenarios each)
e2e-oracle: suite-oracle suite-oracle_v013 suite-oracle_v015 suite-oracle_v016

## e2e-helm: helm v3.22.0 (built from its module) as the reference: the values merge (200 random
## cases), each MetalLB catalog app against `helm template` of its upstream chart (100 value sets
## each), and Helm's engine in the operator (render --chart) against `helm template` of MetalLB
## v0.12.1, v0.15.2, v0.16.2 and ingress-nginx (40 value sets each), the engine's bounds,
## chart apps on embedded clusters from an HTTPS Helm repository on loopback (chart_apps), and
## Helm hooks run in Helm's order around the apply (ingress-nginx's admission hooks, a failing
## hook Job: chart_hooks)
e2e-helm: suite-values_helm suite-chart_fidelity suite-helm_engine suite-chart_apps suite-chart_hooks

## e2e-chaos: faults on purpose (seed 7, 12 faults): a seeded workload of AppDeployments and MetalLB
## pools while the operator, the management and attached API servers are SIGKILLed and an attached
## cluster's port is closed at random moments; then what the clusters hold is checked from the
## clusters and every Event is judged; and an apply cut short by a SIGKILL, then deleted (write_ahead)
e2e-chaos: suite-chaos suite-write_ahead

## chaos: a longer run, e.g. `make chaos SEED=42 COUNT=200` (not in CI)
SEED ?= 1
COUNT ?= 200
chaos: e2e-build
	CHAOS_SEED=$(SEED) CHAOS_FAULTS=$(COUNT) $(CARGO) test -p kommander-operator --test chaos -- --nocapture

## oracle: the same with 300 scenarios each (not in CI: about 45 minutes)
oracle: e2e-build
	ORACLE_SCENARIOS=300 $(CARGO) test -p kommander-operator --test oracle --test oracle_v013 --test oracle_v015 --test oracle_v016 -- --nocapture

## cluster-up / cluster-down: the clusters for tests and demo (kubeconfigs under .e2e/)
cluster-up: e2e-build
	e2e/clusters.sh up $(CLUSTERS)

cluster-down:
	e2e/clusters.sh down

cluster-status:
	e2e/clusters.sh status

## crds: regenerate crds/ from the Rust types (a test fails when they drift)
crds:
	$(CARGO) run -q --bin kommander-operator -- crds --dir crds

## bench: render throughput (criterion), then the operator on embedded clusters (figures printed)
bench: bench-render bench-operator bench-memory bench-watch bench-metallb

bench-render:
	$(CARGO) bench -p kommander-operator --bench render --bench safety --bench fleet

## bench-operator: (a) change latency, (b) cold start of 500 AppDeployments, (c) idle API writes
bench-operator: build e2e-build
	$(CARGO) run --release -q -p kommander-e2e --bin bench_operator -- 50 500 50 300

## bench-memory: operator RSS at rest, with 2,000 unrelated Secrets, and after 300 Apps come and go
bench-memory: build e2e-build
	$(CARGO) run --release -q -p kommander-e2e --bin bench_memory -- 2000 300

## bench-watch: drift -> corrected, Blocked -> proceeding, watch streams and RSS with 2/10/50 clusters
bench-watch: build e2e-build
	$(CARGO) run --release -q -p kommander-e2e --bin bench_watch -- 30 20

## bench-metallb: a safe MetalLB 0.15 pool change -> the real v0.15.2 controller serving it
bench-metallb: build e2e-build
	$(CARGO) run --release -q -p kommander-e2e --bin bench_metallb -- 20

## bench-helm: one chart render through the operator's Helm engine vs helm template, same run
bench-helm: build e2e-build
	$(CARGO) run --release -q -p kommander-e2e --bin bench_helm -- 20

## bench-scale: N KommanderClusters x 2 AppDeployments (N = 100, 250, 500, 1000): cold start, RSS,
## idle CPU and writes (10 min each), one workspace's change rolled out 5 clusters at a time (not in CI)
bench-scale: build e2e-build
	$(CARGO) run --release -q -p kommander-e2e --bin bench_scale -- 100,250,500,1000 50 600

## demo: three embedded clusters, the operator, the guide's MetalLB example (Ctrl-C to stop)
demo: build e2e-build
	e2e/demo.sh

## demo-offline: the CLI alone: render and check the guide's examples, and a refused config
demo-offline: build
	@echo "== Render metallb-0.12.3 with the guide's layer2 overrides (like helm template); the ConfigMap:"
	$(BIN) render --app $(CATALOG) --values examples/metallb-layer2-values.yaml --namespace kommander | sed -n '/^# Source: metallb-0.12.3\/config.yaml/,/^---/p' | sed '$$d'
	@echo "== Check it the way the operator will before rolling it out:"
	$(BIN) check --app $(CATALOG) --values examples/metallb-layer2-values.yaml
	@echo "== The guide's BGP example:"
	$(BIN) check --app $(CATALOG) --values examples/metallb-bgp-values.yaml
	@echo "== A broken config is refused with every problem named (exit code 1 expected):"
	-$(BIN) check --app $(CATALOG) --values examples/metallb-broken-values.yaml

clean:
	$(CARGO) clean
