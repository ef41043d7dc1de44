#!/usr/bin/env bash
# The client without the server: checks that octostore-http built with only its `client`
# feature depends on none of the server's crates: no warp, no hyper with its `server` feature
# (reqwest's hyper client is fine), no oauth2, no prometheus, and no SQLite (octostore-core
# without its default `sqlite`).
#
#   scripts/client_deps.sh
#
# Each pattern is also looked for in the default (`server`) build with the core's `sqlite`,
# where it must be found: a pattern that no longer matches anything (a renamed crate, cargo tree's output changed) fails
# instead of passing silently. Exits non-zero, naming what it found, on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."

# One line per package (`warp v0.4.2`) and per enabled feature (`hyper feature "server"`).
tree() {
  cargo tree -p octostore-http -e normal,features --prefix none "$@"
}

FORBIDDEN=(
  '^warp v'
  '^hyper feature "server"'
  '^hyper-util feature "server'
  '^oauth2 v'
  '^prometheus v'
  '^rusqlite v'
  '^libsqlite3-sys v'
)

client=$(tree --no-default-features --features client)
reference=$(tree --features octostore-core/sqlite)

failed=0
for pattern in "${FORBIDDEN[@]}"; do
  if found=$(grep -E "$pattern" <<<"$client" | sed 's/ (\*)$//' | sort -u) && [[ -n $found ]]; then
    echo "client_deps: the client-only build has what only the server may:" >&2
    echo "$found" | sed 's/^/  /' >&2
    failed=1
  fi
  if ! grep -qE "$pattern" <<<"$reference"; then
    echo "client_deps: pattern '$pattern' matches nothing in the server build: stale?" >&2
    failed=1
  fi
done

if ((failed)); then
  echo "client_deps: see: cargo tree -p octostore-http --no-default-features --features client -e features -i CRATE" >&2
  exit 1
fi
echo "client_deps: the client-only build has no warp, hyper server, oauth2, prometheus or SQLite"
