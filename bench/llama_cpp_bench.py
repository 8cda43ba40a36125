"""llama.cpp (through llama-cpp-python) on the same GGUF, prompt token ids and threads as
freeway-local's bench example; called by bench/local.sh. Prints one JSON object."""

import json
import resource
import statistics
import sys
import time

from llama_cpp import Llama


def main() -> None:
    model, threads, runs, tokens_path = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    with open(tokens_path) as f:
        ids = json.load(f)
    t = time.perf_counter()
    llm = Llama(
        model_path=model,
        n_ctx=2048,
        n_batch=512,
        n_ubatch=512,
        n_threads=threads,
        n_threads_batch=threads,
        verbose=False,
    )
    load_s = time.perf_counter() - t
    eos = {llm.token_eos(), 0}
    pp, ttft, tg = [], [], []
    n_decode = 0
    for i in range(runs + 1):
        # Prompt processing: evaluate the long prompt from an empty cache, sample one token.
        llm.reset()
        t = time.perf_counter()
        for _tok in llm.generate(ids["prompt"], top_k=1, temp=0.0, reset=True):
            first = time.perf_counter() - t
            break
        if i > 0:
            pp.append(len(ids["prompt"]) / first)
            ttft.append(first * 1000)

        # Decode: up to 128 tokens after the short story prompt, greedy.
        llm.reset()
        n = 0
        t_first = None
        for tok in llm.generate(ids["story"], top_k=1, temp=0.0, reset=True):
            if tok in eos:
                break
            n += 1
            if t_first is None:
                t_first = time.perf_counter()
            if n == 128:
                break
        t_end = time.perf_counter()
        if i > 0 and n > 1:
            tg.append((n - 1) / (t_end - t_first))
            n_decode = n - 1
    print(
        json.dumps(
            {
                "engine": "llama.cpp (llama-cpp-python)",
                "load_s": load_s,
                "prompt_tokens": len(ids["prompt"]),
                "prompt_tok_s": statistics.median(pp),
                "prompt_tok_s_runs": pp,
                "ttft_ms": statistics.median(ttft),
                "ttft_ms_runs": ttft,
                "decode_tokens": n_decode,
                "decode_tok_s": statistics.median(tg),
                "decode_tok_s_runs": tg,
                "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            }
        )
    )


if __name__ == "__main__":
    main()
