#!/usr/bin/env bash
# Schema conformance: runs the release server on a fresh SQLite file and lets schemathesis
# test it against the contract it serves (GET /openapi.yaml), with every check, every phase,
# a fixed seed and a bounded number of examples, so a run takes a few minutes and repeats.
#
#   scripts/conformance.sh
#
# Knobs (environment): CONFORMANCE_EXAMPLES (per operation, default 50), CONFORMANCE_SEED,
# CONFORMANCE_WORKERS (default 1: one worker keeps a seeded run repeatable, and keeps two
# scenarios from racing on one resource name, which a use-after-free check would misread).
# Reports (JUnit XML, the server's log) land in target/conformance-report. Exits non-zero on
# any failure.
set -euo pipefail
cd "$(dirname "$0")/.."

SCHEMATHESIS_VERSION=4.32.5
EXAMPLES=${CONFORMANCE_EXAMPLES:-50}
SEED=${CONFORMANCE_SEED:-20250101}
WORKERS=${CONFORMANCE_WORKERS:-1}
VENV=target/conformance-venv
REPORT=target/conformance-report
BIN=target/release/octostore

cargo build --release -p octostore-cli

# schemathesis, pinned, in a venv of its own that later runs reuse.
if ! "$VENV/bin/schemathesis" --version 2>/dev/null |
    grep -qx "schemathesis, version $SCHEMATHESIS_VERSION"; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check \
    "schemathesis==$SCHEMATHESIS_VERSION"
fi

TMP=$(mktemp -d)
SERVER_PID=
cleanup() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

DB="$TMP/octostore.db"
# One user for the run; a second one whose token the rotation run may rotate away.
TOKEN=$("$BIN" token create conformance --db "$DB")
ROTATE_TOKEN=$("$BIN" token create conformance-rotate --db "$DB")

PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
BASE="http://127.0.0.1:$PORT"
rm -rf "$REPORT"
mkdir -p "$REPORT"
# Without GitHub settings, whatever the environment says: nothing may leave this machine (GitHub
# sign-in answers 404 sign_in_not_configured, as the contract documents).
env -u OCTOSTORE_GITHUB_CLIENT_ID -u OCTOSTORE_GITHUB_CLIENT_SECRET \
  -u OCTOSTORE_GITHUB_REDIRECT_URL \
  "$BIN" serve --bind "127.0.0.1:$PORT" --db "$DB" --max-wait 1s >"$REPORT/server.log" 2>&1 &
SERVER_PID=$!

for _ in $(seq 1 100); do
  if curl -fsS -o /dev/null --max-time 1 "$BASE/health" 2>/dev/null; then
    break
  fi
  if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    echo "conformance: the server exited before answering /health:" >&2
    cat "$REPORT/server.log" >&2
    exit 1
  fi
  sleep 0.1
done
curl -fsS -o /dev/null --max-time 1 "$BASE/health" || {
  echo "conformance: the server did not answer GET /health within 10 s" >&2
  exit 1
}
# A rejected token would turn the run into a sea of 401s that schemathesis only warns about.
curl -fsS -o /dev/null --max-time 5 -H "Authorization: Bearer $TOKEN" "$BASE/locks" || {
  echo "conformance: the server refuses the token of 'octostore token create'" >&2
  exit 1
}

cat >"$TMP/schemathesis.toml" <<'EOF'
# Warnings that mean the contract cannot be tested as written fail the run too.
[warnings]
fail-on = ["unsupported_regex", "unresolvable_reference", "method_not_allowed"]

# Requests the contract's schemas cannot tell from valid ones, each answered as documented:
# a compare-and-set is 412 when the key is at another version (the state, not the data,
# decides), and 422 when its `If-Match`, `If-None-Match` and `if_version` disagree (OpenAPI
# cannot say that two parameters exclude each other); a value or rollback that the key's
# JSON Schema refuses is 422 `schema_violation`, and a schema is 422 when it is not a valid
# draft 2020-12 schema (nor can OpenAPI say that) or the key's latest value breaks it.
[[operations]]
include-operation-id = ["putConfig", "rollbackConfig", "putConfigSchema"]
checks.positive_data_acceptance.expected-statuses = ["2xx", "3xx", "401", "403", "404", "409", "412", "422", "429", "5xx"]

# A flag's variants are 422 when two share a name, their weights do not add up to 1 to
# 100000, or their payloads are of more than one type, and 413 when a payload is over 16 KiB
# as JSON: OpenAPI can say none of these of an array's items taken together.
[[operations]]
include-operation-id = ["setFlagVariants"]
checks.positive_data_acceptance.expected-statuses = ["2xx", "3xx", "401", "403", "404", "409", "413", "422", "429", "5xx"]

# Prerequisites are 422 when they would make a cycle or chain deeper than 8 flags, or name a
# variant the required flag lacks (the stored flags decide), or name one flag twice (OpenAPI
# cannot say that items differ in one field).
[[operations]]
include-operation-id = ["setFlagPrerequisites"]
checks.positive_data_acceptance.expected-statuses = ["2xx", "3xx", "401", "403", "404", "409", "422", "429", "5xx"]

# Whether a context must have a subject depends on the stored flag (a percentage or a split
# between variants needs one): 422 `subject_required`, and OFREP's 400
# `TARGETING_KEY_MISSING`.
[[operations]]
include-operation-id = ["evaluateFlagInContext"]
checks.positive_data_acceptance.expected-statuses = ["2xx", "3xx", "401", "403", "404", "409", "422", "429", "5xx"]

# OFREP's 400: as above for one flag; and for both, a context member whose name is not a
# property name (`INVALID_CONTEXT`): the schema bounds the names with `propertyNames`, which
# OpenAPI 3.0 does not have, so a generator may ignore it.
[[operations]]
include-operation-id = ["ofrepEvaluateFlag", "ofrepEvaluateFlags"]
checks.positive_data_acceptance.expected-statuses = ["2xx", "3xx", "400", "401", "403", "404", "409", "429", "5xx"]

# A body over the server's size cap is 413 before anything in it is read (lists of up to 50
# constraints of up to 1000 values of up to 1000 characters can be larger than the cap); a
# rule added to a flag that has 100 already is 422.
[[operations]]
include-operation-id = ["addFlagRule"]
checks.positive_data_acceptance.expected-statuses = ["2xx", "3xx", "401", "403", "404", "409", "413", "422", "429", "5xx"]
checks.negative_data_rejection.expected-statuses = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429", "5xx"]

[[operations]]
include-operation-id = ["setSegment"]
checks.positive_data_acceptance.expected-statuses = ["2xx", "3xx", "401", "403", "404", "409", "413", "429", "5xx"]
checks.negative_data_rejection.expected-statuses = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429", "5xx"]
EOF

run_schemathesis() {
  local name=$1
  shift
  "$VENV/bin/schemathesis" --config-file "$TMP/schemathesis.toml" run "$BASE/openapi.yaml" \
    --url "$BASE" \
    --checks all \
    --seed "$SEED" \
    --workers "$WORKERS" \
    --generation-database none \
    --request-timeout 10 \
    --report junit --report-junit-path "$REPORT/$name.xml" \
    "$@"
}

# Everything but token rotation, which would rotate the run's own token away mid-run.
main_status=0
run_schemathesis main \
  --header "Authorization: Bearer $TOKEN" \
  --phases examples,coverage,fuzzing,stateful \
  --max-examples "$EXAMPLES" \
  --exclude-path /auth/token/rotate || main_status=$?

# Token rotation on its own, with a token of its own: the first success rotates it away,
# after which every call must be a 401.
rotate_status=0
run_schemathesis rotate \
  --header "Authorization: Bearer $ROTATE_TOKEN" \
  --phases examples,coverage,fuzzing \
  --max-examples 5 \
  --include-path /auth/token/rotate || rotate_status=$?

summary=$(python3 - "$REPORT/main.xml" "$REPORT/rotate.xml" <<'EOF'
import sys
import xml.etree.ElementTree as ET

parts = []
for path in sys.argv[1:]:
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        parts.append("no report")
        continue
    cases = list(root.iter("testcase"))
    failed = [c.get("name") for c in cases if c.find("failure") is not None or c.find("error") is not None]
    operations = [c for c in cases if c.get("name") != "Stateful tests"]
    parts.append(f"{len(operations)} operations, {len(failed)} failing"
                 + (f" ({', '.join(failed)})" if failed else ""))
print(f"{parts[0]} (token rotation: {parts[1]})")
EOF
)
if [ "$main_status" -eq 0 ] && [ "$rotate_status" -eq 0 ]; then
  verdict=PASS
else
  verdict=FAIL
fi
echo "conformance: $verdict, schemathesis $SCHEMATHESIS_VERSION, seed $SEED, $EXAMPLES examples per operation: $summary"
[ "$verdict" = PASS ]
