#!/usr/bin/env bash
# The web console's first paint on a user with 10 000 config keys, in headless Chromium:
# the first contentful paint and the time the list's first rows are painted, from the start
# of each navigation, over 5 loads (the ignored test `first_paint_of_10_000_config_keys`).
# Needs chromium and chromium-driver (apt-get install chromium chromium-driver).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test -p octostore-http --test http console::browser::first_paint_of_10_000_config_keys \
  -- --ignored --exact --nocapture 2>&1 | grep -E '^(load|[0-9]+ config keys)'
