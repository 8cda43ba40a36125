-- wrk script: one small non-streamed chat completion per request (temperature 0).
-- BENCH_MODEL: the model; BENCH_HEADER: an optional "name: value" header such as
-- "x-freeway-cache: bypass"; BENCH_KEY: the API key (default: the scripts' master key).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. (os.getenv("BENCH_KEY") or "bench-key")
wrk.body = '{"model":"MODEL","messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"Say hello to the benchmark in a few words."}],"max_tokens":32,"temperature":0}'
wrk.body = wrk.body:gsub("MODEL", os.getenv("BENCH_MODEL") or "gpt-4o-mini")
local header = os.getenv("BENCH_HEADER")
if header and header ~= "" then
  local name, value = header:match("^([^:]+):%s*(.*)$")
  wrk.headers[name] = value
end
