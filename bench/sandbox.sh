#!/usr/bin/env bash
# Spawn-to-exit of `true`: freeway-sandbox (workspace-write, network denied) vs a plain spawn,
# interleaved in one process, median over N runs (default 500).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p freeway-sandbox --example spawn_bench
exec target/release/examples/spawn_bench "${1:-500}"
