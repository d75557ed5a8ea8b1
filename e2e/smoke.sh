#!/usr/bin/env bash
# End-to-end smoke test of the embedded control plane, with the real kubectl: on each of three
# clusters, CRDs install, a Deployment becomes Available, a pod-template change rolls out, and
# deleting the Deployment garbage-collects its ReplicaSets and Pods. Then everything stops and
# no process may be left.
set -uo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
export E2E_STATE_DIR="${E2E_STATE_DIR:-$(mktemp -d /tmp/kommander-e2e.XXXXXX)}"
CLUSTERS=(management attached-1 attached-2)
passed=0
failed=0

check() {
  local what="$1"; shift
  if out="$("$@" 2>&1)"; then
    passed=$((passed + 1)); echo "  ok   $what"
  else
    failed=$((failed + 1)); echo "  FAIL $what"; echo "$out" | sed 's/^/       /' | tail -n 15
  fi
}

# Poll a condition (a command) for up to $1 seconds.
eventually() {
  local secs="$1"; shift
  local end=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $end ] || { "$@"; return 1; }
    sleep 0.5
  done
}

deployment() {
  cat <<YAML
apiVersion: apps/v1
kind: Deployment
metadata:
  name: smoke
  namespace: default
spec:
  replicas: 3
  selector:
    matchLabels: {app: smoke}
  template:
    metadata:
      labels: {app: smoke}
    spec:
      containers:
      - name: web
        image: registry.example/web:$1
YAML
}

replicasets_are() { # "<total> <with-replicas>"
  local got
  got="$(kubectl get rs -l app=smoke -o jsonpath='{range .items[*]}{.status.replicas}{"\n"}{end}')"
  [ "$(echo "$got" | grep -c .)" = "$1" ] && [ "$(echo "$got" | grep -vc '^0$' | tr -d ' ')" = "$2" ]
}
none_left() { [ -z "$(kubectl get "$1" -l app=smoke -o name)" ]; }

cleanup() { "$ROOT/e2e/clusters.sh" down >/dev/null 2>&1 || true; }
trap cleanup EXIT

echo "e2e smoke: state in $E2E_STATE_DIR"
if ! "$ROOT/e2e/clusters.sh" up "${CLUSTERS[@]}"; then
  echo "e2e-smoke: 0 passed, 1 failed"
  exit 1
fi

for c in "${CLUSTERS[@]}"; do
  export KUBECONFIG="$E2E_STATE_DIR/$c/kubeconfig"
  echo "cluster $c"
  check "nodes are Ready" kubectl wait --for=condition=Ready node --all --timeout=30s
  if [ -d "$ROOT/crds" ]; then
    check "CRDs apply" kubectl apply -f "$ROOT/crds/"
    check "CRDs are established" kubectl wait --for=condition=Established crd --all --timeout=30s
  fi
  if [ "$c" = management ]; then
    check "kubectl apply -k manifests/ installs the operator" kubectl apply -k "$ROOT/manifests/"
    check "the operator Deployment becomes Available" kubectl -n kommander-system wait --for=condition=Available deployment/kommander-operator --timeout=60s
  fi
  check "a Deployment is created" bash -c "$(declare -f deployment); deployment v1 | kubectl apply -f -"
  check "the Deployment becomes Available" kubectl wait --for=condition=Available deployment/smoke --timeout=60s
  check "its 3 pods are Running and Ready" eventually 30 bash -c '[ "$(kubectl get pods -l app=smoke -o jsonpath="{range .items[*]}{.status.phase}/{.status.conditions[?(@.type==\"Ready\")].status}{\"\n\"}{end}" | grep -c "Running/True")" = 3 ]'
  check "a pod-template change is applied" bash -c "$(declare -f deployment); deployment v2 | kubectl apply -f -"
  check "the rollout completes" kubectl rollout status deployment/smoke --timeout=60s
  check "a new ReplicaSet took over and the old one is scaled to 0" eventually 30 replicasets_are 2 1
  check "pods run the new image" eventually 30 bash -c '[ "$(kubectl get pods -l app=smoke -o jsonpath="{range .items[*]}{.spec.containers[0].image}{\"\n\"}{end}" | sort -u)" = "registry.example/web:v2" ]'
  check "the Deployment is deleted" kubectl delete deployment smoke --wait=true --timeout=30s
  check "its ReplicaSets are garbage-collected" eventually 60 none_left rs
  check "its Pods are garbage-collected" eventually 60 none_left pods
done

echo "driver"
check "starting running clusters again is harmless" bash -c "'$ROOT/e2e/clusters.sh' up ${CLUSTERS[*]} | grep -c 'already running' | grep -qx ${#CLUSTERS[@]}"
export KUBECONFIG="$E2E_STATE_DIR/attached-2/kubeconfig"
kubectl create configmap survivor --from-literal=k=v >/dev/null
server_before="$(kubectl config view -o jsonpath='{.clusters[0].cluster.server}')"
kill -KILL "$(cat "$E2E_STATE_DIR/attached-2/pid")"
sleep 0.5
check "a crashed cluster is reported by status" bash -c "'$ROOT/e2e/clusters.sh' status | grep -q '^attached-2: not running (crashed?'"
check "up restarts a crashed cluster" "$ROOT/e2e/clusters.sh" up attached-2
check "it comes back on the same address" bash -c "[ \"\$(kubectl config view -o jsonpath='{.clusters[0].cluster.server}')\" = '$server_before' ]"
check "with its objects" kubectl get configmap survivor

echo "resources (measured, not asserted)"
for c in "${CLUSTERS[@]}"; do
  pid="$(cat "$E2E_STATE_DIR/$c/pid")"
  rss="$(awk '/^VmRSS/{print int($2/1024)}' "/proc/$pid/status")"
  peak="$(awk '/^VmHWM/{print int($2/1024)}' "/proc/$pid/status")"
  echo "  $c: ready in $(tr -d '\n' <"$E2E_STATE_DIR/$c/ready"), RSS ${rss} MiB, peak ${peak} MiB"
done

echo "stopping"
check "all clusters stop" "$ROOT/e2e/clusters.sh" down
# The bracket keeps pgrep from matching this very command line.
check "no controlplane process is left" bash -c "! pgrep -f '$ROOT/e2e/bin/controlplan[e] --name'"
trap - EXIT
[ "$failed" = 0 ] && rm -rf "$E2E_STATE_DIR"
echo "e2e-smoke: $passed passed, $failed failed"
[ "$failed" = 0 ]
