-- Shared by the workload scripts: the target (Clozup or PocketBase, from BENCH_TARGET), its
-- headers, ids to pick from, and the one-line JSON report bench/suite.py reads.
local M = {}

M.target = os.getenv("BENCH_TARGET") or "clozup"
M.data = os.getenv("BENCH_DATA") or "target/bench/data"

M.headers = { ["Content-Type"] = "application/json" }
if M.target == "clozup" then
  M.headers["Authorization"] = "Bearer " .. assert(os.getenv("CLOZUP_KEY"), "CLOZUP_KEY is not set")
end

-- One id per line, from a file bench/suite.py wrote.
function M.ids(name)
  local t = {}
  for line in io.lines(M.data .. "/" .. M.target .. "-" .. name .. ".txt") do
    t[#t + 1] = line
  end
  assert(#t > 0, "no ids in " .. name)
  return t
end

function M.pick(t)
  return t[math.random(#t)]
end

function M.get(path)
  return wrk.format("GET", path, M.headers)
end

-- Each wrk thread numbers its own creates, so emails never collide across threads or runs.
local serial = 0
function M.new_lead_body()
  serial = serial + 1
  return string.format(
    '{"first_name":"Bench","last_name":"Lead %d","email":"bench-%s-%d-%d@example.com","status":"new","source":"bench"}',
    serial, M.run_id, M.thread_id, serial)
end

M.run_id = os.getenv("BENCH_RUN") or tostring(os.time())
M.thread_id = 0

function M.init()
  M.thread_id = math.random(1, 1000000000)
  math.randomseed(M.thread_id)
end

-- Latencies are in microseconds; the report is in milliseconds. Any error or non-2xx/3xx
-- answer is counted, with `bad` answers a script found wrong itself, and bench/suite.py
-- refuses a run that has one.
function M.report(summary, latency, requests, bad)
  local seconds = summary.duration / 1e6
  local e = summary.errors
  io.write(string.format(
    'RESULT {"requests":%d,"seconds":%.3f,"rps":%.1f,"p50_ms":%.3f,"p99_ms":%.3f,"p999_ms":%.3f,"max_ms":%.3f,"socket_errors":%d,"bad_status":%d}\n',
    summary.requests, seconds, summary.requests / seconds,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    latency:percentile(99.9) / 1000, latency.max / 1000,
    e.connect + e.read + e.write + e.timeout, e.status + (bad or 0)))
end

return M
