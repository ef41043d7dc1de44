#!/usr/bin/env bash
# One command for the HTTP benchmark: builds octostore, starts it (SQLite file, the default,
# and memory), Redis 7 with AOF (everysec) and etcd 3.4 as references, drives each with
# keep-alive connections from wrk / redis-benchmark on 127.0.0.1 only, prints a table and
# our ratios to the references, and stops everything it started. Beside each workload's
# throughput and latency, the server's own CPU time a request (user + system, all its
# threads): on a shared 2-core guest, a steadier measure of its cost than requests a second.
#
#   bench/run.sh                 # 10 s per workload, 64 connections
#   DURATION=5 CONNECTIONS=32 bench/run.sh
#   bench/run.sh --postgres      # octostore on PostgreSQL (one node, then two) beside etcd
#   USERS=16 bench/run.sh --postgres   # the connections spread over 16 users' tokens, not 2
#   OCTOSTORE=/tmp/octostore-old bench/run.sh   # another build of octostore, not this tree's
#
# --postgres runs on the database at POSTGRES_URL (default: the local one, user postgres,
# database test), in a schema of its own that it drops at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

POSTGRES=0
case "${1:-}" in
  --postgres) POSTGRES=1 ;;
  "") ;;
  *) echo "usage: bench/run.sh [--postgres]" >&2; exit 2 ;;
esac
POSTGRES_URL=${POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}

DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
USERS=${USERS:-2}
PORT_SQLITE=7380 PORT_MEMORY=7381 PORT_PG_A=7382 PORT_PG_B=7383 PORT_REDIS=7390 PORT_ETCD=7379 PORT_ETCD_PEER=7378

need() { command -v "$1" >/dev/null || missing+=("$2"); }
missing=()
need wrk wrk; need redis-server redis-server; need redis-benchmark redis-tools
need etcd etcd-server; need curl curl
if ((POSTGRES)); then need psql postgresql-client; fi
if ((${#missing[@]})); then
  echo "installing ${missing[*]}" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [[ -n ${OCTOSTORE:-} ]]; then
  octostore=$(realpath "$OCTOSTORE")
else
  cargo build --release -q -p octostore-cli
  octostore=$PWD/target/release/octostore
fi

work=$(mktemp -d)
pids=()
schema=octostore_bench_$$
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
  if ((POSTGRES)); then psql -q "$POSTGRES_URL" -c "DROP SCHEMA IF EXISTS $schema CASCADE" || true; fi
}
trap cleanup EXIT

wait_for() { # URL-or-port, what
  for _ in $(seq 200); do
    if [[ $1 == http* ]] && curl -sf -o /dev/null "$1"; then return; fi
    if [[ $1 != http* ]] && redis-cli -p "$1" ping >/dev/null 2>&1; then return; fi
    sleep 0.05
  done
  echo "$2 did not start" >&2; exit 1
}

rows=()
record() { # server workload RESULT-line server-CPU-µs
  read -r _ rps p50 p99 errors _ <<<"$3"
  rows+=("$1|$2|$rps|$p50|$p99|$errors|$(per_request "$4" "$((rps * DURATION))")")
}

TICK_US=$((1000000 / $(getconf CLK_TCK)))
cpu_us() { # pid: its CPU time so far (user + system), in µs
  awk -v us="$TICK_US" '{ print ($14 + $15) * us }' "/proc/$1/stat"
}
per_request() { # µs requests
  awk -v c="$1" -v n="$2" 'BEGIN { if (n > 0) printf "%.1f", c / n; else print "-" }'
}

wrk_run() { # server url workload script [env...]  (the server is the last process started)
  local server=$1 url=$2 workload=$3 script=$4; shift 4
  local line before
  before=$(cpu_us "${pids[-1]}")
  line=$(env "$@" wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency \
    -s "bench/wrk/$script" "$url" | grep '^RESULT')
  record "$server" "$workload" "$line" "$(($(cpu_us "${pids[-1]}") - before))"
}

octostore_workloads() { # server url tokens
  local server=$1 url=$2 tokens=$3 token
  for token in ${tokens//,/ }; do # flags and config are per user: one of each for each
    curl -sf -o /dev/null -X PUT -H "Authorization: Bearer $token" \
      -H 'Content-Type: application/json' \
      -d '{"enabled":true,"percentage":50}' "$url/flags/bench-rollout"
    curl -sf -o /dev/null -X PUT -H "Authorization: Bearer $token" \
      -H 'Content-Type: application/json' \
      -d '{"value":{"replicas":3,"regions":["eu-west-1","us-east-2"]}}' "$url/config/bench-settings"
  done
  wrk_run "$server" "$url" "lock acquire+release" lock_cycle.lua TOKENS="$tokens"
  wrk_run "$server" "$url" "hot lock (1 name)" lock_cycle.lua TOKENS="$tokens" HOT=1
  wrk_run "$server" "$url" "rate-limit check" limit_check.lua TOKENS="$tokens"
  wrk_run "$server" "$url" "flag evaluation" flag_eval.lua TOKENS="$tokens"
  wrk_run "$server" "$url" "config get" config.lua TOKENS="$tokens"
  wrk_run "$server" "$url" "config put" config.lua TOKENS="$tokens" PUT=1
}

wrk_pair() { # server workload script url-a url-b [env...]: half the connections on each node
  local server=$1 workload=$2 script=$3 a=$4 b=$5; shift 5
  local before_a before_b half=$((CONNECTIONS / 2))
  before_a=$(cpu_us "${pids[-2]}") before_b=$(cpu_us "${pids[-1]}")
  env "$@" PREFIX=a wrk -t1 -c"$half" -d"${DURATION}s" --latency -s "bench/wrk/$script" "$a" \
    | grep '^RESULT' >"$work/pair-a" &
  env "$@" PREFIX=b wrk -t1 -c"$half" -d"${DURATION}s" --latency -s "bench/wrk/$script" "$b" \
    | grep '^RESULT' >"$work/pair-b"
  wait $!
  local cpu=$(($(cpu_us "${pids[-2]}") - before_a + $(cpu_us "${pids[-1]}") - before_b))
  # Requests add up; of the latencies, the higher of the two nodes'.
  record "$server" "$workload" "$(awk '{ r += $2; p50 = ($3 > p50 ? $3 : p50);
    p99 = ($4 > p99 ? $4 : p99); e += $5 } END { print "RESULT", r, p50, p99, e }' \
    "$work/pair-a" "$work/pair-b")" "$cpu"
}

postgres_node() { # port: starts a node on the bench's schema
  "$octostore" --database-url "$POSTGRES_URL" --database-schema "$schema" serve \
    --bind "127.0.0.1:$1" 2>>"$work/postgres-$1.log" &
  pids+=($!)
  wait_for "http://127.0.0.1:$1/health" "octostore (postgres, port $1)"
}

if ((POSTGRES)); then
  # octostore on PostgreSQL: one node, then two on the same database.
  tokens=""
  for ((u = 1; u <= USERS; u++)); do
    "$octostore" --database-url "$POSTGRES_URL" --database-schema "$schema" \
      token create "bench-$u" >"$work/bench-$u.token"
    tokens+="${tokens:+,}$(cat "$work/bench-$u.token")"
  done
  postgres_node "$PORT_PG_A"
  url="http://127.0.0.1:$PORT_PG_A"
  curl -sf -o /dev/null -X POST -H "Authorization: Bearer ${tokens%%,*}" \
    -H 'Content-Type: application/json' -d '{"ttl_seconds":3600}' "$url/locks/bench-held/acquire"
  octostore_workloads "postgres, 1 node" "$url" "$tokens"
  wrk_run "postgres, 1 node" "$url" "lock status" lock_status.lua TOKENS="$tokens"
  wrk_run "postgres, 1 node" "$url" "shared limit check" limit_check.lua TOKENS="$tokens" SHARED=1
  postgres_node "$PORT_PG_B"
  url_b="http://127.0.0.1:$PORT_PG_B"
  wrk_pair "postgres, 2 nodes" "lock acquire+release" lock_cycle.lua "$url" "$url_b" \
    TOKENS="$tokens"
  wrk_pair "postgres, 2 nodes" "shared limit check" limit_check.lua "$url" "$url_b" \
    TOKENS="$tokens" SHARED=1
  kill "${pids[-1]}" "${pids[-2]}"
fi

if ((! POSTGRES)); then
# octostore on its default store, a SQLite file (tokens made on the file beforehand).
for user in bench-a bench-b; do
  "$octostore" --db "$work/octostore.db" token create "$user" >"$work/$user.token"
done
tokens="$(cat "$work/bench-a.token"),$(cat "$work/bench-b.token")"
"$octostore" --db "$work/octostore.db" serve --bind "127.0.0.1:$PORT_SQLITE" 2>"$work/sqlite.log" &
pids+=($!)
wait_for "http://127.0.0.1:$PORT_SQLITE/health" "octostore (sqlite)"
octostore_workloads "octostore sqlite" "http://127.0.0.1:$PORT_SQLITE" "$tokens"
kill "${pids[-1]}"

# octostore in memory (tokens written by the server at start).
"$octostore" serve --memory --bind "127.0.0.1:$PORT_MEMORY" \
  --write-token "bench-a=$work/mem-a.token" --write-token "bench-b=$work/mem-b.token" \
  2>"$work/memory.log" &
pids+=($!)
wait_for "http://127.0.0.1:$PORT_MEMORY/health" "octostore (memory)"
tokens="$(cat "$work/mem-a.token"),$(cat "$work/mem-b.token")"
octostore_workloads "octostore memory" "http://127.0.0.1:$PORT_MEMORY" "$tokens"
kill "${pids[-1]}"

# Redis 7, appendonly with fsync every second, nothing else on disk.
redis-server --port "$PORT_REDIS" --bind 127.0.0.1 --save "" --appendonly yes \
  --appendfsync everysec --dir "$work" --logfile "$work/redis.log" &
pids+=($!)
wait_for "$PORT_REDIS" "redis"
redis_run() { # requests workload command...
  local csv before cpu
  before=$(cpu_us "${pids[-1]}")
  csv=$(redis-benchmark -h 127.0.0.1 -p "$PORT_REDIS" -c "$CONNECTIONS" -n "$1" -r 1000000 \
    --csv "${@:3}" | tail -1)
  # "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
  IFS=, read -r _ rps _ _ p50 _ p99 _ <<<"${csv//\"/}"
  cpu=$(per_request "$(($(cpu_us "${pids[-1]}") - before))" "$1")
  rows+=("redis aof|$2|${rps%.*}|$p50|$p99|0|$cpu")
}
redis_run 1000000 "SET NX PX" SET "lock:__rand_int__" holder NX PX 30000
redis_run 1000000 "DEL" DEL "lock:__rand_int__"
kill "${pids[-1]}"
fi

# etcd 3.4, one member, its defaults (a WAL fsync per commit), JSON gateway.
etcd --name bench --data-dir "$work/etcd" \
  --listen-client-urls "http://127.0.0.1:$PORT_ETCD" --advertise-client-urls "http://127.0.0.1:$PORT_ETCD" \
  --listen-peer-urls "http://127.0.0.1:$PORT_ETCD_PEER" \
  --initial-advertise-peer-urls "http://127.0.0.1:$PORT_ETCD_PEER" \
  --initial-cluster "bench=http://127.0.0.1:$PORT_ETCD_PEER" 2>"$work/etcd.log" &
pids+=($!)
wait_for "http://127.0.0.1:$PORT_ETCD/health" "etcd"
lease=$(curl -sf -X POST -d '{"TTL":600}' "http://127.0.0.1:$PORT_ETCD/v3/lease/grant" \
  | sed -E 's/.*"ID":"([0-9]+)".*/\1/')
wrk_run "etcd 3.4" "http://127.0.0.1:$PORT_ETCD" "txn lock acquire+release" etcd_lock.lua LEASE="$lease"
kill "${pids[-1]}"

printf '\n%-17s %-26s %10s %9s %9s %7s %11s\n' server workload "req/s" "p50 ms" "p99 ms" errors \
  "cpu µs/req"
for row in "${rows[@]}"; do
  IFS='|' read -r server workload rps p50 p99 errors cpu <<<"$row"
  printf '%-17s %-26s %10s %9s %9s %7s %11s\n' "$server" "$workload" "$rps" "$p50" "$p99" \
    "$errors" "$cpu"
done
rps_of() {
  local row s w r
  for row in "${rows[@]}"; do
    IFS='|' read -r s w r _ <<<"$row"
    if [[ $s == "$1" && $w == "$2" ]]; then echo "$r"; fi
  done
}
etcd_rps=$(rps_of "etcd 3.4" "txn lock acquire+release")
echo
if ((POSTGRES)); then
  echo "octostore on PostgreSQL against etcd 3.4's txn lock cycle, $CONNECTIONS connections:"
  for row in "${rows[@]}"; do
    IFS='|' read -r server workload rps _ p99 _ <<<"$row"
    if [[ $server == postgres* ]]; then
      awk -v s="$server" -v w="$workload" -v o="$rps" -v e="$etcd_rps" -v p="$p99" \
        'BEGIN { printf "  %-18s %-22s %5.2fx etcd  (p99 %s ms)\n", s, w, o / e, p }'
    fi
  done
  exit 0
fi
ours=$(rps_of "octostore sqlite" "lock acquire+release")
redis_rps=$(rps_of "redis aof" "SET NX PX")
echo "lock cycle, octostore on SQLite (default durability), $CONNECTIONS connections:"
awk -v o="$ours" -v e="$etcd_rps" -v r="$redis_rps" 'BEGIN {
  printf "  %.2fx etcd 3.4 txn lock cycle (target >= 5)\n", o / e
  printf "  %.2fx Redis 7 AOF everysec SET NX PX (target >= 0.3)\n", o / r }'
