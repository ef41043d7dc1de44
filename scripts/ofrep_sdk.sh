#!/usr/bin/env bash
# OFREP with the real OpenFeature Python SDK: starts the given octostore binary on a fresh
# SQLite file and a free port, creates flags over HTTP, and runs scripts/ofrep_sdk.py against it.
#
#   scripts/ofrep_sdk.sh target/debug/octostore
#
# The SDK and provider are pinned and installed once into a venv under
# ${OCTOSTORE_PY_CACHE:-$HOME/.cache/octostore/ofrep-venv}, which later runs reuse.
# Exits non-zero on any failure (the server's log is printed then).
set -euo pipefail
BIN=$(realpath "${1:?usage: $0 PATH/TO/octostore}")
HERE=$(cd "$(dirname "$0")" && pwd)
VENV=${OCTOSTORE_PY_CACHE:-$HOME/.cache/octostore/ofrep-venv}
PINS=(openfeature-sdk==0.10.0 openfeature-provider-ofrep==0.3.0 requests==2.34.2 urllib3==2.8.0
  idna==3.21 charset-normalizer==3.5.3 certifi==2026.10.19.post1)

if [ "$(cat "$VENV/pins" 2>/dev/null)" != "${PINS[*]}" ] ||
  ! "$VENV/bin/python" -c 'import openfeature.contrib.provider.ofrep' 2>/dev/null; then
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "${PINS[@]}"
  echo "${PINS[*]}" >"$VENV/pins"
fi

# Only our file and port: no server, database or GitHub sign-in from the environment.
unset OCTOSTORE_URL OCTOSTORE_TOKEN OCTOSTORE_TOKEN_FILE OCTOSTORE_DATABASE_URL OCTOSTORE_DB \
  OCTOSTORE_BIND OCTOSTORE_GITHUB_CLIENT_ID OCTOSTORE_GITHUB_CLIENT_SECRET OCTOSTORE_GITHUB_REDIRECT_URL
TMP=$(mktemp -d)
SERVER_PID=
cleanup() {
  status=$?
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  if [ "$status" -ne 0 ] && [ -f "$TMP/server.log" ]; then
    echo "ofrep_sdk: the server's log:" >&2
    cat "$TMP/server.log" >&2
  fi
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

DB="$TMP/octostore.db"
TOKEN=$("$BIN" token create ofrep --db "$DB")
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
URL="http://127.0.0.1:$PORT"
"$BIN" serve --bind "127.0.0.1:$PORT" --db "$DB" >"$TMP/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 100); do
  curl -fsS -o /dev/null --max-time 1 "$URL/health" 2>/dev/null && break
  kill -0 "$SERVER_PID" 2>/dev/null || { echo "ofrep_sdk: the server exited" >&2; exit 1; }
  sleep 0.1
done
curl -fsS -o /dev/null --max-time 1 "$URL/health" ||
  { echo "ofrep_sdk: the server did not answer GET /health within 10 s" >&2; exit 1; }

# call METHOD PATH JSON: a request that must answer 2xx (the token from a file, not from ps).
printf 'Authorization: Bearer %s\n' "$TOKEN" >"$TMP/auth"
call() {
  local code
  code=$(curl -sS --max-time 10 -o "$TMP/answer" -w '%{http_code}' -X "$1" \
    -H @"$TMP/auth" -H 'Content-Type: application/json' "$URL$2" -d "$3")
  case $code in
    2??) ;;
    *) echo "ofrep_sdk: $1 $2 $3 answered $code: $(cat "$TMP/answer")" >&2; exit 1 ;;
  esac
}
# variant FLAG NAME TYPE VALUE: a flag on for everyone, with one variant.
variant() {
  call PUT "/flags/$1" '{"enabled": true}'
  call PUT "/flags/$1/variants" "{\"variants\": [{\"name\": \"$2\", \"weight\": 1000, \"payload\": {\"type\": \"$3\", \"value\": $4}}]}"
}

call PUT /flags/pro-only '{"enabled": true}'
call POST /flags/pro-only/rules '{"constraints": [{"property": "plan", "operator": "IN", "values": ["pro"], "case_insensitive": false, "inverted": false}], "segments": [], "percentage": null}'
call PUT /flags/color '{"enabled": true}'
call PUT /flags/color/variants '{"variants": [
  {"name": "blue", "weight": 500, "payload": {"type": "string", "value": "#0000ff"}},
  {"name": "green", "weight": 500, "payload": {"type": "string", "value": "#00ff00"}}]}'
variant max-items max number 25
variant ratio quarter number 0.25
variant theme dark json '{"mode": "dark", "sizes": [1, 2]}'
call PUT /flags/rollout '{"enabled": true, "percentage": 50}'
call PUT /flags/retired '{"enabled": false}'
call PUT /flags/retired/variants '{"variants": [{"name": "old", "weight": 1000, "payload": {"type": "string", "value": "old"}}]}'
# A segment a rule names, and a prerequisite: checkout-v2 is on for acme's people while
# checkout (its kill switch) is on.
call PUT /segments/acme '{"constraints": [{"property": "email", "operator": "STR_ENDS_WITH", "values": ["@acme.com"], "case_insensitive": true}]}'
call PUT /flags/checkout '{"enabled": true}'
call PUT /flags/checkout-v2 '{"enabled": true}'
call POST /flags/checkout-v2/rules '{"segments": ["acme"]}'
call PUT /flags/checkout-v2/prerequisites '{"prerequisites": [{"flag": "checkout"}]}'

OCTOSTORE_URL=$URL OCTOSTORE_TOKEN=$TOKEN "$VENV/bin/python" "$HERE/ofrep_sdk.py"
