#!/usr/bin/env bash
# Builds the metrics pipeline of the local process cluster from the Go
# modules pinned under hack/metrics (one module per project, so their
# Kubernetes libraries never have to agree): metrics-server (the resource
# metrics API the HPA's CPU target reads), Prometheus (scrapes kongsim pods
# by annotation) and KEDA's operator and metrics adapter (the external
# metrics API for requests/s and bandwidth targets; prometheus-adapter is not
# available from the module proxy here). The binaries go into a cache outside
# the repository keyed by the pinned versions; later runs find them and do
# nothing.
#
# Usage: hack/build-metrics.sh [--find]
#   (no flag)  build what is missing; print the bin directory on stdout
#   --find     never build: print the bin directory if every binary is there
#              and built from the pinned version, else exit 3
#
# Environment:
#   KONDUCTOR_CACHE     cache root (default $HOME/.cache/konductor)
#   METRICS_COMPONENTS  binaries to build (default: metrics-server prometheus
#                       keda keda-adapter)
#   BUILD_NICE          niceness of the compiler (default 15)
#
# Everything but the final path goes to stderr: bin="$(hack/build-metrics.sh)".
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
export GOWORK=off # the hack/metrics modules are not part of go.work on purpose
export CGO_ENABLED=0

log() { printf 'build-metrics: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

command -v go >/dev/null || die "go is not on PATH"

read -r -a components <<<"${METRICS_COMPONENTS:-metrics-server prometheus keda keda-adapter}"

# module_of, main_of and package_of say where each binary comes from.
module_of() {
  case "$1" in
  metrics-server) echo metrics-server ;;
  prometheus) echo prometheus ;;
  keda | keda-adapter) echo keda ;;
  *) die "unknown component $1" ;;
  esac
}
main_of() {
  case "$1" in
  metrics-server) echo sigs.k8s.io/metrics-server ;;
  prometheus) echo github.com/prometheus/prometheus ;;
  keda | keda-adapter) echo github.com/kedacore/keda/v2 ;;
  esac
}
package_of() {
  case "$1" in
  metrics-server) echo sigs.k8s.io/metrics-server/cmd/metrics-server ;;
  prometheus) echo github.com/prometheus/prometheus/cmd/prometheus ;;
  keda) echo github.com/kedacore/keda/v2/cmd/operator ;;
  keda-adapter) echo github.com/kedacore/keda/v2/cmd/adapter ;;
  esac
}
version_of() { (cd "$repo/hack/metrics/$(module_of "$1")" && go list -m -f '{{.Version}}' "$(main_of "$1")"); }
# ldflags_of stamps the version the way each project's own build does.
ldflags_of() {
  local v
  v="$(version_of "$1")"
  case "$1" in
  metrics-server) echo "-s -w -X k8s.io/client-go/pkg/version.gitVersion=$v -X k8s.io/component-base/version.gitVersion=$v" ;;
  prometheus)
    # Module v0.3XY.Z is Prometheus 3.XY.Z.
    local release="$v"
    [[ "$v" =~ ^v0\.3([0-9]+)\.([0-9]+)$ ]] && release="3.$((10#${BASH_REMATCH[1]})).${BASH_REMATCH[2]}"
    echo "-s -w -X github.com/prometheus/common/version.Version=${release#v} -X github.com/prometheus/common/version.Branch=module"
    ;;
  keda | keda-adapter) echo "-s -w -X github.com/kedacore/keda/v2/version.Version=$v" ;;
  esac
}

# tags_of picks build tags each project documents. Prometheus compiles some
# thirty service-discovery plugins (every cloud's SDK) unless told which to
# keep; the local cluster's configuration (deploy/addons/prometheus) uses
# kubernetes_sd_configs alone, and file and http discovery always stay. This
# roughly halves its build on a cold machine.
tags_of() {
  case "$1" in
  prometheus) echo remove_all_sd,enable_kubernetes_sd ;;
  *) echo "" ;;
  esac
}

cache_root="${KONDUCTOR_CACHE:-$HOME/.cache/konductor}"
key=""
for c in "${components[@]}"; do key+="$c-$(version_of "$c")_"; done
dest_parent="$cache_root/metrics"
dest="$dest_parent/bin"

# A binary counts as built only if its build information names the pinned
# module version (go version -m reads it without running the binary).
healthy() {
  local bin="$1/$2" out
  [[ -x "$bin" ]] || return 1
  out="$(go version -m "$bin" 2>/dev/null)" || return 1
  grep -qE "^[[:space:]]+(mod|dep)[[:space:]]+$(main_of "$2")[[:space:]]+$(version_of "$2")([[:space:]]|$)" <<<"$out"
}
missing_in() {
  local c
  for c in "${components[@]}"; do healthy "$1" "$c" || echo "$c"; done
}

case "${1:-}" in
--find)
  missing=($(missing_in "$dest"))
  if ((${#missing[@]} > 0)); then
    log "not built: ${missing[*]}; run hack/build-metrics.sh (or make metrics-binaries)"
    exit 3
  fi
  echo "$dest"
  exit 0
  ;;
"") ;;
*) die "unknown argument $1" ;;
esac

mkdir -p "$dest"
# Concurrent callers wait for each other instead of building twice.
exec 9>"$dest_parent/.lock"
flock 9

missing=($(missing_in "$dest"))
if ((${#missing[@]} == 0)); then
  log "cached: ${components[*]} (${key%_})"
  echo "$dest"
  exit 0
fi

for c in "${missing[@]}"; do
  mod="$repo/hack/metrics/$(module_of "$c")"
  start=$SECONDS
  log "downloading modules of $c"
  (cd "$mod" && go mod download)
  log "building $c ($(package_of "$c")@$(version_of "$c"))"
  tmp="$(mktemp "$dest/.$c.XXXXXX")"
  # The modules pin every version in go.mod/go.sum (KEDA's replace lines
  # are copied into its module); -mod=readonly keeps them as committed.
  if ! (cd "$mod" && nice -n "${BUILD_NICE:-15}" go build -mod=readonly -trimpath \
    -tags "$(tags_of "$c")" -ldflags "$(ldflags_of "$c")" -o "$tmp" "$(package_of "$c")"); then
    rm -f "$tmp"
    die "building $c failed"
  fi
  # Renamed into place: readers never see a half-written binary.
  mv "$tmp" "$dest/$c"
  healthy "$dest" "$c" || die "$c was built but its build information does not name $(main_of "$c") $(version_of "$c")"
  log "built $c in $((SECONDS - start)) s ($(du -h "$dest/$c" | cut -f1))"
done
log "binaries in $dest"
echo "$dest"
