-- wrk script: the Responses twin of chat.lua, the same prompt as one small non-streamed
-- response. BENCH_MODEL: the model; BENCH_STORE: "true" keeps each response in the store.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. (os.getenv("BENCH_KEY") or "bench-key")
wrk.body = '{"model":"MODEL","instructions":"You are terse.","input":"Say hello to the benchmark in a few words.","max_output_tokens":32,"temperature":0,"store":STORE}'
wrk.body = wrk.body:gsub("MODEL", os.getenv("BENCH_MODEL") or "gpt-4o-mini")
wrk.body = wrk.body:gsub("STORE", os.getenv("BENCH_STORE") or "false")
