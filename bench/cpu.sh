#!/usr/bin/env bash
# What one request costs freeway in CPU time and thread switches at a paced rate, per thread
# group: the tokio workers, the SQLite workers, the rest. Figures come from the kernel's
# scheduler statistics (/proc/<pid>/task/*/schedstat: nanoseconds on CPU and times scheduled in),
# read before and after the load, so nothing is sampled and nothing slows freeway down.
#
#   bench/cpu.sh                    # 25 and 1000 requests/s, 10 s each
#   RATES="25 50" DURATION=20 bench/cpu.sh
#   TOKIO_WORKER_THREADS=1 bench/cpu.sh
#
# The load is the request of bench/chat.lua over 4 connections, paced by oha (open loop) when it
# is installed, else by wrk with bench/paced.lua. The latency columns are wrk's or oha's, measured
# from the client; the upstream answers at once, so they are freeway's cost plus two hops.
# Needs: wrk (apt-get install wrk); oha for open-loop pacing.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10}
RATES=${RATES:-25 1000}
LOADGEN=${LOADGEN:-$(command -v oha >/dev/null && echo oha || echo wrk)}
. bench/lib.sh
start_upstream
start_freeway < <(standard_config)

# One line per thread: name, nanoseconds on CPU, times scheduled in. The mock upstream, a bare
# hyper server that answers from memory, is the reference: what one request costs a process on
# this machine at the same rate.
snapshot() {
  for t in /proc/"$fw_pid"/task/*; do
    read -r run _ slices <"$t/schedstat"
    printf '%s %s %s\n' "$(tr ' ' _ <"$t/comm")" "$run" "$slices"
  done
  for t in /proc/"$mock_pid"/task/*; do
    read -r run _ slices <"$t/schedstat"
    printf 'upstream %s %s\n' "$run" "$slices"
  done
}

# Sums the snapshot by thread group.
groups() {
  awk '{ g = $1; if (g == "upstream") g = "the upstream (reference)"; else if (g ~ /^tokio-rt-worker/) g = "freeway: tokio workers";
         else if (g ~ /sqlite/) g = "freeway: sqlite workers"; else g = "freeway: other threads";
         run[g] += $2; n[g] += $3 } END { for (g in run) printf "%s\t%d\t%d\n", g, run[g], n[g] }'
}

load() { # rate
  local url="http://127.0.0.1:$port/v1/chat/completions"
  if [ "$LOADGEN" = oha ]; then
    open_loop load "http://127.0.0.1:$port" up/gpt-4o-mini bench-key "$1" 4
    printf '%s %.0f %.0f\n' "$(awk '$1 == "responses:" {print $2}' "$tmp/load.txt")" "$(us load 50%)" "$(us load 99%)"
  else
    BENCH_MODEL=up/gpt-4o-mini BENCH_KEY=bench-key BENCH_RATE=$1 BENCH_CONNECTIONS=4 \
      wrk -t1 -c4 -d"${DURATION}s" --latency -s bench/paced.lua "$url" >"$tmp/load.txt"
    awk '/requests in/ {n=$1} $1=="50%" {p50=$2} $1=="99%" {p99=$2} END {print n, p50, p99}' "$tmp/load.txt" |
      while read -r n a b; do printf '%s %s %s\n' "$n" "$(to_us "$a")" "$(to_us "$b")"; done
  fi
}

BENCH_MODEL=up/gpt-4o-mini wrk -t1 -c4 -d2s -s bench/chat.lua "http://127.0.0.1:$port/v1/chat/completions" >/dev/null
sleep 1 # let the ledger writer drain the warm-up
printf '\nfreeway CPU per request (%s, %ss per rate, TOKIO_WORKER_THREADS=%s)\n\n' "$LOADGEN" "$DURATION" "${TOKIO_WORKER_THREADS:-default}"
printf '| rate | requests | client p50 / p99 | thread group | CPU per request | scheduled in per request |\n|---|---|---|---|---|---|\n'
for rate in $RATES; do
  snapshot | groups >"$tmp/before"
  read -r n p50 p99 < <(load "$rate")
  sleep 1 # the ledger rows of the last requests are written after their responses
  snapshot | groups >"$tmp/after"
  # A thread that started during the load has no "before" line and counts from zero.
  awk -F'\t' -v n="$n" -v r="$rate" -v l="$p50 µs / $p99 µs" '
    FNR == NR { run[$1] = $2; slices[$1] = $3; next }
    { printf "| %s/s | %d | %s | %s | %.0f µs | %.1f |\n", r, n, l, $1, ($2 - run[$1]) / n / 1000, ($3 - slices[$1]) / n }' \
    "$tmp/before" "$tmp/after" | sort
done
