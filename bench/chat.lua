-- wrk script: one small non-streamed chat completion per request.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer bench-key"
wrk.body = '{"model":"MODEL","messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"Say hello to the benchmark in a few words."}],"max_tokens":32,"temperature":0}'
wrk.body = wrk.body:gsub("MODEL", os.getenv("BENCH_MODEL") or "gpt-4o-mini")
