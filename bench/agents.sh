#!/usr/bin/env bash
# Many agent sessions at once on one freeway: each session gets its own copy of a small
# repository with a failing test, and one turn in which the mock upstream's `coding-agent`
# model plays the fix (read both files in parallel, edit, run the test in the sandbox,
# answer). All turns start together. Reports the wall time, turn latencies, and freeway's
# resident memory idle, at its peak, and per session.
#
#   bench/agents.sh              # 200 sessions
#   SESSIONS=50 bench/agents.sh
#
# Needs: python3 (standard library only).
set -euo pipefail
cd "$(dirname "$0")/.."
SESSIONS=${SESSIONS:-200}
. bench/lib.sh
start_upstream
mkdir -p "$tmp/work"
for i in $(seq "$SESSIONS"); do
  mkdir -p "$tmp/work/s$i"
  printf 'def add(a, b):\n    return a - b\n' >"$tmp/work/s$i/calc.py"
  printf 'from calc import add\nassert add(2, 3) == 5\nprint("ok")\n' >"$tmp/work/s$i/test_calc.py"
done
start_freeway <<TOML
[storage]
url = "sqlite://$tmp/freeway.db"

[cache]
url = "off"

[sandbox]
workspace = "$tmp/work"
on_missing = "degrade"
default_timeout_ms = 120000

[[providers]]
name = "up"
protocol = "openai"
base_url = "http://$upstream/v1"
models = ["coding-agent"]

[[agents]]
name = "coder"
model = "up/coding-agent"
TOML
rss() { awk -v k="$1:" '$1 == k {print $2}' "/proc/$fw_pid/status"; }
idle=$(rss VmRSS)
python3 - "http://127.0.0.1:$port" "$SESSIONS" "$tmp/work" "$fw_pid" "$idle" <<'PY'
import concurrent.futures, json, pathlib, sys, time, urllib.request

base, n, work, pid, idle = sys.argv[1], int(sys.argv[2]), pathlib.Path(sys.argv[3]), sys.argv[4], int(sys.argv[5])

def post(path, body):
    req = urllib.request.Request(base + path, json.dumps(body).encode(), {"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=600) as r:
        return json.load(r)

def rss(key):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0

sessions = [post("/v1/sessions", {"working_directory": f"s{i + 1}"})["id"] for i in range(n)]
created = rss("VmRSS")

def turn(sid):
    t = time.monotonic()
    out = post(f"/v1/sessions/{sid}/messages", {"content": "fix the failing test", "stream": False})
    return time.monotonic() - t, out["outcome"]["reason"]

start = time.monotonic()
with concurrent.futures.ThreadPoolExecutor(max_workers=n) as pool:
    results = list(pool.map(turn, sessions))
wall = time.monotonic() - start
lat = sorted(r[0] for r in results)
done = sum(1 for r in results if r[1] == "completed")
fixed = sum(1 for i in range(n) if "a + b" in (work / f"s{i + 1}" / "calc.py").read_text())
peak, after = rss("VmHWM"), rss("VmRSS")
pc = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))]
print(f"\n{n} concurrent agent sessions, one turn each (4 model steps, 4 tool calls incl. a sandboxed python3 run)\n")
print("| sessions | completed | files fixed | wall | turn p50 | turn p99 | RSS idle | RSS after create | RSS peak | peak per session |")
print("|---|---|---|---|---|---|---|---|---|---|")
print(f"| {n} | {done} | {fixed} | {wall:.1f} s | {pc(0.5) * 1000:.0f} ms | {pc(0.99) * 1000:.0f} ms "
      f"| {idle / 1024:.1f} MiB | {created / 1024:.1f} MiB | {peak / 1024:.1f} MiB | {(peak - idle) / n:.0f} KiB |")
PY
if [ -s "$tmp/fw.err" ]; then echo "freeway stderr:"; tail -5 "$tmp/fw.err"; fi
