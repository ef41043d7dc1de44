#!/usr/bin/env bash
# Config put over HTTP, before and after a change: the `config put` workload of bench/run.sh
# (wrk, PUT=1) on a SQLite file, against two octostore binaries in turn, ROUNDS times each,
# interleaved (this shared 2-core guest drifts from minute to minute); then, on the second
# binary, the service settings of bench/wrk/service.json put without a schema and under
# bench/wrk/service.schema.json, interleaved too: what checking a realistic schema costs.
#
#   bench/config_put.sh OLD_BINARY NEW_BINARY
#   DURATION=10 CONNECTIONS=64 ROUNDS=3 bench/config_put.sh OLD NEW
set -euo pipefail
cd "$(dirname "$0")/.."

old=$1 new=$2
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
ROUNDS=${ROUNDS:-3}
PORT=${PORT:-7385}
command -v wrk >/dev/null || {
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
}

work=$(mktemp -d)
pid=
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

# One run: a fresh file, two users, the workload; prints "req/s p50 p99 errors".
run() { # binary workload-env... (SCHEMA=1 sets the schema on every key first)
  local binary=$1; shift
  rm -rf "$work/db"; mkdir "$work/db"
  local a b
  a=$("$binary" --db "$work/db/o.db" token create bench-a)
  b=$("$binary" --db "$work/db/o.db" token create bench-b)
  "$binary" --db "$work/db/o.db" serve --bind "127.0.0.1:$PORT" 2>"$work/server.log" &
  pid=$!
  for _ in $(seq 200); do curl -sf -o /dev/null "http://127.0.0.1:$PORT/health" && break; sleep 0.05; done
  if [[ " $* " == *" SCHEMA=1 "* ]]; then
    local schema
    schema="{\"schema\":$(cat bench/wrk/service.schema.json)}"
    for token in "$a" "$b"; do
      for thread in $(seq "$THREADS"); do
        for n in $(seq 0 63); do
          curl -sf -o /dev/null -X PUT -H "Authorization: Bearer $token" \
            -H 'Content-Type: application/json' -d "$schema" \
            "http://127.0.0.1:$PORT/config/bench-$thread-$n/schema"
        done
      done
    done
  fi
  env "$@" TOKENS="$a,$b" PUT=1 wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency \
    -s bench/wrk/config.lua "http://127.0.0.1:$PORT" | grep '^RESULT' | cut -d' ' -f2-5
  kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
}

printf '%-44s %9s %9s %9s %6s\n' "binary, workload" "req/s" "p50 ms" "p99 ms" "errors"
for round in $(seq "$ROUNDS"); do
  for pair in "old:$old" "new:$new"; do
    printf '%-44s %9s %9s %9s %6s\n' "${pair%%:*} config put (round $round)" $(run "${pair#*:}" SMALL=1)
  done
done
for round in $(seq "$ROUNDS"); do
  printf '%-44s %9s %9s %9s %6s\n' "new service settings, no schema ($round)" $(run "$new" SERVICE=1)
  printf '%-44s %9s %9s %9s %6s\n' "new service settings, schema ($round)" $(run "$new" SERVICE=1 SCHEMA=1)
done
