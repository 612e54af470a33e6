#!/usr/bin/env bash
# Builds the control-plane binaries of the local process cluster (etcd,
# kube-apiserver, kube-controller-manager, kube-scheduler) and kubectl from
# the Go modules pinned in hack/k8s/go.mod, into a cache outside the
# repository keyed by the Kubernetes version. The first build takes ~10-15
# minutes on 2 cores (kubectl adds about 2); later runs find the binaries,
# check that they report the pinned version, and do nothing.
#
# Usage: hack/build-k8s.sh [--find] [--check-replace] [--sync-replace]
#   (no flag)        build if needed; print the bin directory on stdout
#   --find           never build: print the bin directory if every binary is
#                    there and healthy, else exit 3 (tests use this, so a test
#                    never waits minutes for a build; .ci/run and make build)
#   --check-replace  only compare hack/k8s/go.mod's replace lines with the
#                    replace block of k8s.io/kubernetes's own go.mod
#   --sync-replace   rewrite hack/k8s/go.mod's replace lines from it (use after
#                    bumping the k8s.io/kubernetes version)
#
# Environment:
#   KONDUCTOR_CACHE  cache root (default $HOME/.cache/konductor)
#   K8S_COMPONENTS   binaries to build (default: etcd kube-apiserver
#                    kube-controller-manager kube-scheduler kubectl;
#                    kube-proxy is available too)
#   BUILD_NICE       niceness of the compiler (default 15: the build shares
#                    the machine with tests)
#
# Everything but the final path goes to stderr, so callers can do
#   bin="$(hack/build-k8s.sh)".
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
mod="$repo/hack/k8s"
export GOWORK=off # hack/k8s is not part of go.work on purpose
export CGO_ENABLED=0

log() { printf 'build-k8s: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

command -v go >/dev/null || die "go is not on PATH"

mod_version() { (cd "$mod" && go list -m -f '{{.Version}}' "$1"); }
k8s_version="$(mod_version k8s.io/kubernetes)"
etcd_version="$(mod_version go.etcd.io/etcd/server/v3)"
[[ "$k8s_version" =~ ^v1\.([0-9]+)\.([0-9]+)$ ]] || die "unexpected k8s.io/kubernetes version $k8s_version in $mod/go.mod"
k8s_minor="${BASH_REMATCH[1]}"
staging_version="v0.${k8s_minor}.${BASH_REMATCH[2]}"

# The replace lines k8s.io/kubernetes needs, derived from its own go.mod:
# every "k8s.io/x => ./staging/src/k8s.io/x" becomes "k8s.io/x => k8s.io/x vX".
wanted_replaces() {
  local gomod
  gomod="$(cd "$mod" && go mod download -json "k8s.io/kubernetes@$k8s_version" |
    sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')"
  [[ -f "$gomod" ]] || die "cannot find the go.mod of k8s.io/kubernetes@$k8s_version in the module cache"
  sed -n '/^replace (/,/^)/p' "$gomod" |
    awk -v v="$staging_version" '$2 == "=>" && $3 ~ /^\.\/staging\// { print $1 " => " $1 " " v }' | sort
}
current_replaces() {
  (cd "$mod" && go mod edit -json) |
    awk '/"Replace": \[/ {on=1} on' |
    tr -d ' \t",' | awk -F: '
      $1 == "Old" {side="old"} $1 == "New" {side="new"}
      $1 == "Path" { p[side]=$2 }
      $1 == "Version" && side == "new" { print p["old"] " => " p["new"] " " $2 }' | sort
}

case "${1:-}" in
--check-replace | --sync-replace)
  want="$(wanted_replaces)"
  have="$(current_replaces)"
  if [[ "$want" == "$have" ]]; then
    log "hack/k8s/go.mod replace lines match k8s.io/kubernetes@$k8s_version"
    exit 0
  fi
  if [[ "$1" == --check-replace ]]; then
    diff <(echo "$have") <(echo "$want") >&2 || true
    die "hack/k8s/go.mod replace lines differ from k8s.io/kubernetes@$k8s_version (run $0 --sync-replace)"
  fi
  args=()
  while read -r old _ new ver; do args+=("-replace=$old=$new@$ver"); done <<<"$want"
  (cd "$mod" && go mod edit "${args[@]}" && go mod tidy)
  log "rewrote the replace lines of hack/k8s/go.mod"
  exit 0
  ;;
"" | --find) ;;
*) die "unknown argument $1" ;;
esac

cache_root="${KONDUCTOR_CACHE:-$HOME/.cache/konductor}"
dest_parent="$cache_root/k8s/$k8s_version"
dest="$dest_parent/bin"
read -r -a components <<<"${K8S_COMPONENTS:-etcd kube-apiserver kube-controller-manager kube-scheduler kubectl}"

package_of() {
  case "$1" in
  etcd) echo go.etcd.io/etcd/server/v3 ;;
  kube-apiserver | kube-controller-manager | kube-scheduler | kube-proxy | kubectl) echo "k8s.io/kubernetes/cmd/$1" ;;
  *) die "unknown component $1" ;;
  esac
}
expected_version() {
  case "$1" in
  etcd) echo "etcd Version: ${etcd_version#v}" ;;
  kubectl) echo "Client Version: $k8s_version" ;;
  *) echo "Kubernetes $k8s_version" ;;
  esac
}
# A binary counts as built only if it runs and reports the pinned version.
healthy() {
  local bin="$1/$2"
  [[ -x "$bin" ]] || return 1
  # Capture first: with pipefail, `--version | grep -q` fails at random when
  # grep exits on the first line and the binary dies of SIGPIPE writing the
  # rest.
  local out version_args=(--version)
  # kubectl has no --version flag.
  if [[ "$2" == kubectl ]]; then version_args=(version --client); fi
  out="$("$bin" "${version_args[@]}" 2>/dev/null)" || return 1
  grep -qF "$(expected_version "$2")" <<<"$out"
}
missing_in() {
  local c
  for c in "${components[@]}"; do healthy "$1" "$c" || echo "$c"; done
}

if [[ "${1:-}" == --find ]]; then
  missing=($(missing_in "$dest"))
  if ((${#missing[@]} > 0)); then
    log "not built: ${missing[*]} ($k8s_version); run hack/build-k8s.sh (or make k8s-binaries)"
    exit 3
  fi
  echo "$dest"
  exit 0
fi

mkdir -p "$dest_parent"
# Concurrent callers (two test packages, CI and a developer) wait for each
# other instead of building twice.
exec 9>"$dest_parent/.lock"
flock 9

missing=($(missing_in "$dest"))
if ((${#missing[@]} == 0)); then
  log "cached: ${components[*]} ($k8s_version, etcd $etcd_version)"
  echo "$dest"
  exit 0
fi

"$0" --check-replace

tmp="$(mktemp -d "$dest_parent/.build.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/bin"
# Keep the healthy binaries of an earlier build (hard links, no copy).
if [[ -d "$dest" ]]; then
  for f in "$dest"/*; do
    [[ -f "$f" ]] && healthy "$dest" "$(basename "$f")" && ln "$f" "$tmp/bin/"
  done
fi

build_date="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=$k8s_version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$k8s_minor"
  ldflags+=" -X $pkg.gitTreeState=archive -X $pkg.buildDate=$build_date"
done

log "downloading modules"
start=$SECONDS
(cd "$mod" && go mod download)
log "downloaded in $((SECONDS - start)) s"
for c in "${missing[@]}"; do
  start=$SECONDS
  log "building $c ($(package_of "$c"))"
  (cd "$mod" && nice -n "${BUILD_NICE:-15}" go build -mod=readonly -trimpath -ldflags "$ldflags" \
    -o "$tmp/bin/$c" "$(package_of "$c")")
  healthy "$tmp/bin" "$c" || die "$c was built but does not report $(expected_version "$c")"
  log "built $c in $((SECONDS - start)) s ($(du -h "$tmp/bin/$c" | cut -f1))"
done

# Swap the finished directory in; readers never see a half-written binary.
if [[ -d "$dest" ]]; then
  mv "$dest" "$tmp/old"
fi
mv "$tmp/bin" "$dest"
log "binaries in $dest"
echo "$dest"
