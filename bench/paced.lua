-- wrk script: the chat.lua request at about a given rate (wrk has no -R). Run from the
-- repository root.
-- BENCH_RATE: requests per second in all; BENCH_CONNECTIONS: the -c given to wrk.
dofile("bench/chat.lua")

local rate = tonumber(os.getenv("BENCH_RATE") or "0")
local connections = tonumber(os.getenv("BENCH_CONNECTIONS") or "1")
-- wrk waits whole milliseconds between a connection's response and its next request, so the
-- rate is connections / (gap + latency): round the gap down to stay at or above the target.
local gap = 0
if rate > 0 then gap = math.floor(1000 * connections / rate) end

function delay()
  return gap
end
