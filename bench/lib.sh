# Shared by the load scripts: build, start the mock upstream and freeway, helpers for wrk output.
# Source it from the repository root after `set -euo pipefail`.

command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }
# BIN points at binaries built elsewhere (a separate target dir); without it, build them here.
if [ -z "${BIN:-}" ]; then
  cargo build --release -q -p freeway-cli -p freeway-testkit
  BIN=target/release
fi
tmp=$(mktemp -d)
cleanup() { kill "${mock_pid:-}" "${fw_pid:-}" 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT

# Sets $upstream (host:port) and $mock_pid.
start_upstream() {
  "$BIN/freeway-mock-upstream" --listen 127.0.0.1:0 >"$tmp/mock.out" &
  mock_pid=$!
  for _ in $(seq 100); do grep -q listening "$tmp/mock.out" 2>/dev/null && break; sleep 0.05; done
  upstream=$(sed -n 's/.*listening on //p' "$tmp/mock.out")
}

# The configuration most load scripts serve: the master key `bench-key`; a SQLite store, to
# which every request writes its ledger row and audit entry (batched, off the request path);
# no response cache, because the benchmark request is deterministic (temperature 0) and after
# the first every request would be a hit, so the upstream would not be measured
# (bench/routing.sh measures hits); and one OpenAI-protocol provider `up` on the mock upstream.
# The provider's table comes last, so a caller may print more of its keys after this.
standard_config() {
  cat <<TOML
[server]
master_key = "bench-key"

[storage]
url = "sqlite://$tmp/freeway.db"

[cache]
url = "off"

[[providers]]
name = "up"
protocol = "openai"
base_url = "http://$upstream/v1"
models = ["gpt-4o-mini"]
TOML
}

# Serves the configuration on stdin; sets $port and $fw_pid.
start_freeway() {
  cat >"$tmp/freeway.toml"
  port=$((20000 + RANDOM % 20000))
  FREEWAY_LOG=warn "$BIN/freeway" serve --config "$tmp/freeway.toml" --listen "127.0.0.1:$port" 2>"$tmp/fw.err" &
  fw_pid=$!
  for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break; sleep 0.05; done
}

pct() { awk -v p="$2" '$1 == p {print $2}' "$tmp/$1.txt"; }
rps() { awk '/Requests\/sec/ {print $2}' "$tmp/$1.txt"; }
to_us() { # wrk prints 52.00us / 1.23ms / 1.02s
  awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) print n; else if (v ~ /ms$/) print n * 1000; else print n * 1000000 }'
}

# Warms up (2 s, 4 connections), then measures one connection for $DURATION seconds into
# $tmp/<name>.txt. The caller sets BENCH_* for the script in the environment.
measure() { # name script url
  wrk -t1 -c4 -d2s -s "bench/$2" "$3" >/dev/null
  wrk -t1 -c1 -d"${DURATION}s" --latency -s "bench/$2" "$3" >"$tmp/$1.txt"
}

us() { to_us "$(pct "$1" "$2")"; }
delta() { # run base percentile: how much later run's percentile is than base's
  awk -v a="$(us "$1" "$3")" -v b="$(us "$2" "$3")" 'BEGIN{printf "%+.0f µs", a-b}'
}

# Offers bench/chat.lua's request at a fixed rate for $DURATION seconds with oha, open loop: a
# request is sent when it is due whether or not earlier ones have returned, and its latency
# counts from that moment (--latency-correction). The summary goes to $tmp/<name>.txt in wrk's
# words, for pct and rps, with a line counting non-200 answers and errors.
open_loop() { # name url model key rate connections
  local body='{"model":"'"$3"'","messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"Say hello to the benchmark in a few words."}],"max_tokens":32,"temperature":0}'
  oha -z "${DURATION}s" -q "$5" -c "$6" --latency-correction --no-tui --output-format json \
    -m POST -H "authorization: Bearer $4" -T application/json -d "$body" "$2/v1/chat/completions" >"$tmp/$1.json"
  python3 - "$tmp/$1.json" >"$tmp/$1.txt" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
for p in ("50", "99"):
    print(f"{p}% {d['latencyPercentiles']['p' + p] * 1e6:.2f}us")
ok = d["statusCodeDistribution"].get("200", 0)
print(f"Requests/sec: {ok / d['summary']['total']:.2f}")
print(f"responses: {ok}")
print(f"non-200: {sum(d['statusCodeDistribution'].values()) - ok} errors: {sum(d['errorDistribution'].values())}")
PY
}
