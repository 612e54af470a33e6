#!/usr/bin/env bash
# Runs drills on a local process cluster of its own and brings the cluster
# down afterwards, also when interrupted (konductor-chaos rolls back first).
#
#   hack/drill.sh [konductor-chaos run flags] DRILL...
#
# BIN (default bin) holds konductor-chaos, localcluster and the pod binaries;
# CHAOS_CLUSTER (default chaos) names the cluster. Needs root.
set -uo pipefail
bin=${BIN:-bin}
name=${CHAOS_CLUSTER:-chaos}
if [[ $(id -u) != 0 ]]; then
  echo "drill: the local process cluster needs root (network namespaces, process faults)" >&2
  exit 2
fi
kubeconfig=$("$bin/localcluster" up --name "$name") || { echo "drill: the local cluster did not start" >&2; exit 2; }
trap '"$bin/localcluster" down --name "$name" >/dev/null || echo "drill: localcluster down failed" >&2' EXIT
"$bin/konductor-chaos" run -provider local -kubeconfig "$kubeconfig" "$@"
