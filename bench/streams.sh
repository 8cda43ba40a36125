#!/usr/bin/env bash
# freeway's memory with many streams open at once: RSS idle, then with 1,000 and 10,000
# concurrent streamed chat completions held open (each has sent its first event and waits
# for more from an upstream that has gone quiet), then after they close.
#
#   bench/streams.sh                 # 1000 and 10000 streams
#   COUNTS="1000" bench/streams.sh
#
# Clients speak HTTP/1.1, one connection per stream (python3, standard library only), so
# each stream holds two sockets in freeway (client and upstream). A count that does not fit
# the open-file limit that way (`ulimit -Hn`: 10,000 streams need over 20,000) is opened over
# HTTP/2 instead, 100 streams to a connection (bench/hold_streams_h2.py, with the venv's `h2`
# from `make venv`), where each stream holds one socket. H2=1 uses HTTP/2 for every count.
set -euo pipefail
cd "$(dirname "$0")/.."
COUNTS=${COUNTS:-1000 10000}
ulimit -n "$(ulimit -Hn)"
fits=$(( ($(ulimit -n) - 200) / 2 ))
fits_h2=$(( $(ulimit -n) - 400 ))
PYTHON_H2=${PYTHON_H2:-.venv/bin/python}
. bench/lib.sh
start_upstream
start_freeway <<TOML
[server]
master_key = "bench-key"

[storage]
url = "sqlite://$tmp/freeway.db"

[[providers]]
name = "up"
protocol = "openai"
base_url = "http://$upstream/v1"
api_key = "unused"
models = ["hang-midstream"]
# The upstream sends half an answer, then nothing: the streams stay open until closed.
read_timeout_secs = 600
TOML
sleep 0.5
rss() { awk '/VmRSS/ {printf "%.1f", $2/1024}' "/proc/$fw_pid/status"; }
idle=$(rss)
rows=""
for n in $COUNTS; do
  client="HTTP/1.1"
  if [ "${H2:-0}" = 1 ] || [ "$n" -gt "$fits" ]; then
    client="HTTP/2"
    if [ "$n" -gt "$fits_h2" ]; then
      echo "$n streams need $((n + 400)) open files; the limit is $(ulimit -n): measuring $fits_h2" >&2
      n=$fits_h2
    fi
  fi
  mkfifo "$tmp/hold$n"
  if [ "$client" = HTTP/2 ]; then
    "$PYTHON_H2" bench/hold_streams_h2.py "http://127.0.0.1:$port" up/hang-midstream "$n" bench-key \
      <"$tmp/hold$n" >"$tmp/held$n.out" &
  else
    python3 bench/hold_streams.py "http://127.0.0.1:$port" up/hang-midstream "$n" bench-key \
      <"$tmp/hold$n" >"$tmp/held$n.out" &
  fi
  holder=$!
  exec 3>"$tmp/hold$n"
  for _ in $(seq 1200); do grep -q '^open' "$tmp/held$n.out" 2>/dev/null && break; sleep 0.1; done
  grep -q "^open $n" "$tmp/held$n.out" || { echo "the streams did not open"; cat "$tmp/held$n.out"; exit 1; }
  sleep 1
  held=$(rss)
  active=$(curl -fs "http://127.0.0.1:$port/metrics" -H "authorization: Bearer bench-key" |
    awk '/^freeway_active_streams\{/ {s += $2} END {print s}')
  exec 3>&-
  wait "$holder" || true
  sleep 2
  rows="$rows| $n | $client | $held MiB | $active | $(awk -v h="$held" -v i="$idle" -v n="$n" 'BEGIN{printf "%.1f", (h-i)*1024/n}') KiB | $(rss) MiB |\n"
done
printf '\nfreeway RSS with streams held open (idle: %s MiB)\n\n' "$idle"
printf '| open streams | client | RSS | freeway_active_streams | per stream | RSS after they close |\n|---|---|---|---|---|---|\n'
printf "$rows"
