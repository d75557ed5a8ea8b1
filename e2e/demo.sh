#!/usr/bin/env bash
# make demo: a management cluster and two attached clusters (real Kubernetes, embedded), the
# CRDs and catalog, a workspace with both clusters attached, the operator, and the
# load-balancing guide's MetalLB example applied verbatim. Then it shows the result and keeps
# running until Ctrl-C (DEMO_EXIT=1: exit after showing it).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
export E2E_STATE_DIR="${E2E_STATE_DIR:-$ROOT/.e2e}"
OPERATOR="$ROOT/target/release/kommander-operator"
MGMT="$E2E_STATE_DIR/management/kubeconfig"
WORKSPACE=demo-workspace
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "Starting clusters (management, attached-1, attached-2)"
"$ROOT/e2e/clusters.sh" up management attached-1 attached-2
export KUBECONFIG="$MGMT"

say "Installing CRDs and the catalog on the management cluster"
kubectl apply -f "$ROOT/crds/" >/dev/null
kubectl wait --for=condition=Established crd --all --timeout=60s >/dev/null
kubectl apply -f "$ROOT/manifests/catalog/"

say "Starting the operator (log: $E2E_STATE_DIR/operator.log)"
if [ -f "$E2E_STATE_DIR/operator.pid" ] && kill -0 "$(cat "$E2E_STATE_DIR/operator.pid")" 2>/dev/null; then
  kill "$(cat "$E2E_STATE_DIR/operator.pid")" 2>/dev/null || true
  sleep 1
fi
RUST_LOG="${RUST_LOG:-info}" "$OPERATOR" run --no-leader-election --metrics-addr 127.0.0.1:0 >>"$E2E_STATE_DIR/operator.log" 2>&1 &
echo $! >"$E2E_STATE_DIR/operator.pid"
stop_operator() { kill "$(cat "$E2E_STATE_DIR/operator.pid")" 2>/dev/null || true; }
trap stop_operator EXIT

say "Creating the host workspace and workspace $WORKSPACE with both clusters attached"
kubectl apply -f - <<YAML
apiVersion: workspaces.kommander.mesosphere.io/v1alpha1
kind: Workspace
metadata: {name: kommander}
spec: {namespaceName: kommander}
---
apiVersion: workspaces.kommander.mesosphere.io/v1alpha1
kind: Workspace
metadata: {name: $WORKSPACE}
spec: {}
YAML
for _ in $(seq 1 100); do
  ns="$(kubectl get workspace "$WORKSPACE" -o jsonpath='{.status.namespaceRef.name}')"
  [ -n "$ns" ] && kubectl get namespace "$ns" >/dev/null 2>&1 && break
  sleep 0.2
done
kubectl apply -f - <<YAML
apiVersion: kommander.mesosphere.io/v1beta1
kind: KommanderCluster
metadata: {name: host-cluster, namespace: kommander}
spec: {}
YAML
for c in attached-1 attached-2; do
  kubectl -n "$ns" create secret generic "$c-kubeconfig" --from-file=kubeconfig="$E2E_STATE_DIR/$c/kubeconfig" \
    --dry-run=client -o yaml | kubectl apply -f - >/dev/null
  kubectl apply -f - <<YAML
apiVersion: kommander.mesosphere.io/v1beta1
kind: KommanderCluster
metadata: {name: $c, namespace: $ns, labels: {env: demo}}
spec: {kubeconfigRef: {name: $c-kubeconfig}}
YAML
done

say "The guide's commands, verbatim"
echo "\$ export WORKSPACE_NAMESPACE=\$(kubectl get workspace $WORKSPACE -o jsonpath='{.status.namespaceRef.name}')"
export WORKSPACE_NAMESPACE=$(kubectl get workspace "$WORKSPACE" -o jsonpath='{.status.namespaceRef.name}')
echo "\$ kubectl apply -f examples/seed-layer2.yaml   # the guide's ConfigMap + AppDeployment, \${WORKSPACE_NAMESPACE}=$WORKSPACE_NAMESPACE"
sed "s/\${WORKSPACE_NAMESPACE}/$WORKSPACE_NAMESPACE/g" "$ROOT/examples/seed-layer2.yaml" | kubectl apply -f -
kubectl -n "$WORKSPACE_NAMESPACE" wait --for=condition=Ready appdeployment/metallb --timeout=90s

say "kubectl get appdeployments -A"
kubectl get appdeployments -A
say "kubectl get kommanderclusters -A"
kubectl get kommanderclusters -A
for c in attached-1 attached-2; do
  say "MetalLB ConfigMap on $c (kubectl --kubeconfig $E2E_STATE_DIR/$c/kubeconfig -n $WORKSPACE_NAMESPACE get configmap metallb)"
  kubectl --kubeconfig "$E2E_STATE_DIR/$c/kubeconfig" -n "$WORKSPACE_NAMESPACE" get configmap metallb -o jsonpath='{.data.config}'
  kubectl --kubeconfig "$E2E_STATE_DIR/$c/kubeconfig" -n "$WORKSPACE_NAMESPACE" get deploy,daemonset,pods -l app=metallb
done

say "Try it: export KUBECONFIG=$MGMT"
if [ "${DEMO_EXIT:-0}" = 1 ]; then
  "$ROOT/e2e/clusters.sh" down
  exit 0
fi
echo "The clusters and the operator keep running; Ctrl-C stops the operator, 'make cluster-down' the clusters."
wait "$(cat "$E2E_STATE_DIR/operator.pid")"
