#!/usr/bin/env bash
# Benchmarks freeway's embedded model against llama.cpp itself, in the same run, on the same
# GGUF (SmolLM2-135M-Instruct Q4_1), the same prompt token ids and the same thread count:
# prompt-processing and decode tokens/s, time to first token, peak RSS (medians of RUNS runs
# after a warm-up). llama.cpp comes from the PyPI package llama-cpp-python, built from source
# into a venv on first use (6-9 minutes).
#
#   bench/local.sh                 # THREADS=2 RUNS=7 ROUNDS=3
#
# The VM is noisy (OpenMP spin-waiting suffers from any other runnable process), so the two
# engines alternate for ROUNDS rounds and the medians of all their runs are reported.
# OMP_WAIT_POLICY is left as the environment has it; it only affects llama-cpp-python (built with
# OpenMP; `passive` roughly halves its decode speed here). freeway builds llama.cpp without
# OpenMP and uses ggml's own thread pool. Set CARGO_TARGET_DIR to reuse another build.
set -euo pipefail
cd "$(dirname "$0")/.."

THREADS="${THREADS:-2}"
RUNS="${RUNS:-7}"
ROUNDS="${ROUNDS:-3}"
LLAMA_CPP_PYTHON="${LLAMA_CPP_PYTHON:-llama-cpp-python==0.3.36}"
VENV="${BENCH_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/freeway/bench-venv}"

model="${FREEWAY_LOCAL_MODEL:-$(scripts/fetch-model.sh)}"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT

echo "building freeway-local bench (release)..." >&2
cargo build --release -q -p freeway-local --example bench
bench_bin="${CARGO_TARGET_DIR:-target}/release/examples/bench"

if ! "$VENV/bin/python" -c 'import llama_cpp' 2>/dev/null; then
    echo "building $LLAMA_CPP_PYTHON into $VENV (6-9 minutes)..." >&2
    python3 -m venv "$VENV"
    CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
-DGGML_BMI2=ON -DGGML_AVX512=ON -DGGML_AVX512_VBMI=ON -DGGML_AVX512_VNNI=ON -DGGML_AVX512_BF16=ON \
-DGGML_AVX_VNNI=ON" \
        "$VENV/bin/pip" install --quiet --disable-pip-version-check --no-cache-dir "$LLAMA_CPP_PYTHON" >&2
fi

for round in $(seq "$ROUNDS"); do
    echo "round $round/$ROUNDS" >&2
    "$bench_bin" "$model" "$THREADS" "$RUNS" "$out/tokens.json" >"$out/freeway.$round.json"
    "$VENV/bin/python" bench/llama_cpp_bench.py "$model" "$THREADS" "$RUNS" "$out/tokens.json" \
        >"$out/llama.$round.json"
done

python3 - "$out" "$ROUNDS" "$THREADS" "$model" <<'PY'
import json, statistics, sys, os
out, rounds, threads, model = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
def load(name):
    rs = [json.load(open(os.path.join(out, f"{name}.{r}.json"))) for r in range(1, rounds + 1)]
    agg = dict(rs[0])
    for k in ("prompt_tok_s", "ttft_ms", "decode_tok_s"):
        agg[k] = statistics.median([x for r in rs for x in r[k + "_runs"]])
    agg["peak_rss_mb"] = max(r["peak_rss_mb"] for r in rs)
    return agg
f, l = load("freeway"), load("llama")
print(f"model: {os.path.basename(model)}  threads: {threads}  runs: {rounds} x {len(f['ttft_ms_runs'])}")
print(f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '(unset)')}")
print()
print("| engine | prompt tok/s ({} tokens) | time to first token | decode tok/s ({} tokens) | peak RSS |".format(f["prompt_tokens"], f["decode_tokens"]))
print("|---|---|---|---|---|")
for r in (f, l):
    print(f"| {r['engine']} | {r['prompt_tok_s']:.0f} | {r['ttft_ms']:.1f} ms | {r['decode_tok_s']:.0f} | {r['peak_rss_mb']:.0f} MB |")
print()
print(f"freeway / llama.cpp: prompt {f['prompt_tok_s']/l['prompt_tok_s']:.2f}x (target >= 0.7), "
      f"decode {f['decode_tok_s']/l['decode_tok_s']:.2f}x (target >= 0.9), "
      f"first token {f['ttft_ms']-l['ttft_ms']:+.1f} ms (target within 50 ms)")
PY
