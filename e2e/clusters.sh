#!/usr/bin/env bash
# Start and stop embedded Kubernetes clusters, one controlplane process each.
#
#   e2e/clusters.sh up management attached-1 attached-2   # start (or keep) them, wait until ready
#   e2e/clusters.sh status                                 # what runs, where its kubeconfig is
#   e2e/clusters.sh down                                   # stop them all, leave no process behind
#   e2e/clusters.sh kill attached-1                        # SIGKILL one, as a crash would
#
# State lives in $E2E_STATE_DIR/<name>/ (default: .e2e/ at the repository root): kubeconfig,
# controlplane.log, etcd data, certificates, the chosen ports and the pid.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
STATE="${E2E_STATE_DIR:-$ROOT/.e2e}"
BIN="${CONTROLPLANE_BIN:-$ROOT/e2e/bin/controlplane}"
READY_TIMEOUT="${READY_TIMEOUT:-120}"

die() { echo "clusters: $*" >&2; exit 1; }

# A killed cluster can linger as a zombie (its parent shell is gone and PID 1 may not reap):
# kill -0 succeeds on zombies, so look at the process state too.
alive() {
  [ -f "$1/pid" ] || return 1
  local state
  state="$(ps -o stat= -p "$(cat "$1/pid")" 2>/dev/null)" || return 1
  [ -n "$state" ] && [ "${state:0:1}" != "Z" ]
}

start_one() {
  local name="$1" dir="$STATE/$1"
  mkdir -p "$dir"
  if alive "$dir"; then
    [ -f "$dir/ready" ] && { echo "$name: already running"; return 0; }
    echo "$name: already starting"
    return 0
  fi
  rm -f "$dir/ready" "$dir/pid"
  # A first start picks the cluster's ports (see restart_on_new_ports).
  if [ -f "$dir/ports.json" ]; then echo 0 >"$dir/first-start"; else echo 1 >"$dir/first-start"; fi
  # setsid: the cluster outlives this shell; its own process group makes stopping it exact.
  setsid "$BIN" --name "$name" --state-dir "$dir" >>"$dir/controlplane.log" 2>&1 </dev/null &
  echo $! >"$dir/pid"
  date +%s.%N >"$dir/started"
}

wait_one() {
  local name="$1" dir="$STATE/$1" waited=0
  while [ ! -f "$dir/ready" ]; do
    if ! alive "$dir"; then
      echo "clusters: $name crashed during start-up; last lines of $dir/controlplane.log:" >&2
      tail -n 25 "$dir/controlplane.log" >&2 || true
      return 1
    fi
    if [ "$waited" -ge $((READY_TIMEOUT * 10)) ]; then
      echo "clusters: $name not ready after ${READY_TIMEOUT}s; see $dir/controlplane.log" >&2
      return 1
    fi
    sleep 0.1
    waited=$((waited + 1))
  done
  echo "$name: ready ($(cat "$dir/ready" | tr -d '\n')) KUBECONFIG=$dir/kubeconfig"
}

# A cluster's ports are picked on its first start (free ones, released again for its
# components to bind), so another process can take one in between: most likely when test
# suites start clusters side by side. A first start that lost a port that way starts afresh on
# new ones, twice at most; a restart keeps its ports (its address), so it is never retried.
restart_on_new_ports() {
  local name="$1" dir="$STATE/$1"
  for _ in 1 2; do
    [ "$(cat "$dir/first-start" 2>/dev/null)" = 1 ] || return 1
    grep -q "address already in use" "$dir/controlplane.log" 2>/dev/null || return 1
    echo "clusters: $name lost a port to another process during start-up; starting it afresh" >&2
    stop_one "$name" >/dev/null
    rm -rf "$dir"
    start_one "$name"
    wait_one "$name" && return 0
  done
  return 1
}

stop_one() {
  local name="$1" dir="$STATE/$1"
  if ! alive "$dir"; then
    rm -f "$dir/pid" "$dir/ready"
    return 0
  fi
  local pid; pid="$(cat "$dir/pid")"
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 150); do
    alive "$dir" || break
    sleep 0.1
  done
  if alive "$dir"; then
    echo "clusters: $name did not stop within 15s; killing it" >&2
    kill -KILL "$pid" 2>/dev/null || true
    sleep 0.2
  fi
  rm -f "$dir/pid" "$dir/ready"
  echo "$name: stopped"
}

# SIGKILL, as a crash would: no graceful shutdown; the data stays for a restart.
kill_one() {
  local name="$1" dir="$STATE/$1"
  alive "$dir" || { echo "$name: not running"; return 0; }
  kill -KILL "$(cat "$dir/pid")" 2>/dev/null || true
  for _ in $(seq 1 100); do
    alive "$dir" || break
    sleep 0.1
  done
  alive "$dir" && die "$name still runs 10 s after SIGKILL"
  rm -f "$dir/ready"
  echo "$name: killed"
}

names_in_state() {
  [ -d "$STATE" ] || return 0
  for d in "$STATE"/*/; do [ -f "$d/pid" ] && basename "$d"; done
  return 0
}

cmd="${1:-}"; shift || true
case "$cmd" in
  up)
    [ $# -gt 0 ] || die "usage: $0 up NAME..."
    [ -x "$BIN" ] || die "$BIN is not built (run: make e2e-build)"
    for n in "$@"; do start_one "$n"; done
    failed=0
    for n in "$@"; do wait_one "$n" || restart_on_new_ports "$n" || failed=1; done
    [ "$failed" = 0 ] || die "some clusters did not start"
    ;;
  down)
    names=("$@")
    [ ${#names[@]} -gt 0 ] || mapfile -t names < <(names_in_state)
    for n in "${names[@]}"; do stop_one "$n"; done
    # "[e]": a pattern that cannot match a command line quoting it.
    pattern="${BIN%e}[e] --name"
    if [ $# -eq 0 ] && pgrep -f "$pattern" >/dev/null; then
      die "controlplane processes are still running: $(pgrep -f "$pattern" | tr '\n' ' ')"
    fi
    ;;
  kill)
    [ $# -gt 0 ] || die "usage: $0 kill NAME..."
    for n in "$@"; do kill_one "$n"; done
    ;;
  status)
    for n in $(names_in_state); do
      d="$STATE/$n"
      if alive "$d" && [ -f "$d/ready" ]; then echo "$n: running, KUBECONFIG=$d/kubeconfig"
      elif alive "$d"; then echo "$n: starting"
      else echo "$n: not running (crashed? see $d/controlplane.log)"; fi
    done
    ;;
  *) die "usage: $0 up NAME... | down [NAME...] | kill NAME... | status" ;;
esac
