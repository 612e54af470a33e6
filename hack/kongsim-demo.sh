#!/usr/bin/env bash
# Starts a DB-less kongsim on loopback, loads hack/sample-config.yaml through
# the Admin API, shows what Kong reports, and stops it again.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="$(mktemp -d)"
trap 'kill "${pid:-0}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$bin"' EXIT
go build -o "$bin/kongsim" "$root/cmd/kongsim"
KONG_DATABASE=off KONG_ADMIN_LISTEN=127.0.0.1:18001 KONG_PROXY_LISTEN=127.0.0.1:18000 \
  KONG_STATUS_LISTEN=127.0.0.1:18100 KONG_LOG_LEVEL=warn "$bin/kongsim" &
pid=$!
for _ in $(seq 1 100); do curl -fsS http://127.0.0.1:18001/status >/dev/null 2>&1 && break; sleep 0.1; done
echo "== readiness before any config"; curl -sS http://127.0.0.1:18100/status/ready; echo
echo "== POST /config"; curl -sS -o /dev/null -w '%{http_code}\n' -X POST \
  -H 'Content-Type: application/json' --data-binary "$(python3 -c 'import json,sys; print(json.dumps({"config": open(sys.argv[1]).read()}))' "$root/hack/sample-config.yaml")" \
  'http://127.0.0.1:18001/config?check_hash=1&flatten_errors=1'
echo "== /status"; curl -sS http://127.0.0.1:18001/status; echo
echo "== readiness after the config"; curl -sS http://127.0.0.1:18100/status/ready; echo
echo "== a request through the proxy (no backend listens on 127.0.0.1:18080, so Kong answers 502)"
curl -sS -i -H 'Host: example.com' http://127.0.0.1:18000/echo/hi | grep -iv '^\(date\|content-length\|x-kong-request-id\):'; echo
