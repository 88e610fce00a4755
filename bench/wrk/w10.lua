-- W10: W1 as an agent makes it over MCP: `tools/call get_lead` on /mcp, as the official SDK
-- sends it on the current protocol revision (2026-07-28: its headers and request _meta).
-- A tool error comes back as a 200, so each answer is read: one without the lead's data is
-- counted as a bad answer, and bench/suite.py refuses the run.
package.path = "bench/wrk/?.lua;" .. package.path
local c = require("common")
local leads = c.ids("leads")
local headers = {}
for k, v in pairs(c.headers) do headers[k] = v end
headers["Accept"] = "application/json, text/event-stream"
headers["MCP-Protocol-Version"] = "2026-07-28"
headers["Mcp-Method"] = "tools/call"
headers["Mcp-Name"] = "get_lead"
local meta = '"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28",'
  .. '"io.modelcontextprotocol/clientCapabilities":{}}'
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init()
  c.init()
  failed = 0
end
function request()
  return wrk.format("POST", "/mcp", headers,
    '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_lead","arguments":{"id":"'
      .. c.pick(leads) .. '"},' .. meta .. '}}')
end
function response(status, _, body)
  if status == 200 and not body:find('"structuredContent":{"data":{"id":"lead_', 1, true) then
    failed = failed + 1
  end
end
function done(summary, latency, requests)
  local bad = 0
  for _, t in ipairs(threads) do bad = bad + t:get("failed") end
  c.report(summary, latency, requests, bad)
end
