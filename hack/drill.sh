#!/usr/bin/env bash
# Runs drills on a local process cluster of its own and brings the cluster
# down afterwards, also when interrupted (konductor-chaos rolls back first).
#
#   hack/drill.sh [konductor-chaos run flags] DRILL...
#
# BIN (default bin) holds konductor-chaos, localcluster and the pod binaries;
# CHAOS_CLUSTER (default chaos) names the cluster; DRILL_RUNS (default 1)
# runs the whole set that many times in a row on the one cluster (each run
# writes its own journal and report under DRILL_OUT, default
# chaos/out/<time>/run-N, and konductor-chaos pool then writes one table over
# them all to DRILL_OUT/pooled.md; a drill's topology is deployed and
# removed by the drill itself). Needs root.
set -uo pipefail
bin=$(realpath "${BIN:-bin}")
name=${CHAOS_CLUSTER:-chaos}
if [[ $(id -u) != 0 ]]; then
  echo "drill: the local process cluster needs root (network namespaces, process faults)" >&2
  exit 2
fi
kubeconfig=$("$bin/localcluster" up --name "$name" --bin "$bin") || { echo "drill: the local cluster did not start" >&2; exit 2; }
trap '"$bin/localcluster" down --name "$name" >/dev/null || echo "drill: localcluster down failed" >&2' EXIT
runs=${DRILL_RUNS:-1}
out=()
journals=()
if ((runs > 1)); then
  base=${DRILL_OUT:-chaos/out/$(date -u +%Y%m%d-%H%M%S)}
fi
pool() {
  ((${#journals[@]} > 1)) || return 0
  "$bin/konductor-chaos" pool -out "$base/pooled.md" "${journals[@]}" || echo "drill: pooling the runs' journals failed" >&2
}
status=0
for ((run = 1; run <= runs; run++)); do
  if ((runs > 1)); then
    echo "drill: run $run of $runs" >&2
    # A -out among the caller's flags comes later and wins; then there is
    # nothing here to pool.
    out=(-out "$base/run-$run")
  fi
  "$bin/konductor-chaos" run -provider local -kubeconfig "$kubeconfig" "${out[@]}" "$@"
  rc=$?
  if ((runs > 1)) && [[ -f "$base/run-$run/journal.jsonl" ]]; then
    journals+=("$base/run-$run/journal.jsonl")
  fi
  case $rc in
  0) ;;
  130 | 2) # interrupted, or a setup error the next run would repeat
    pool
    exit $rc
    ;;
  *) status=$rc ;;
  esac
done
pool
exit $status
