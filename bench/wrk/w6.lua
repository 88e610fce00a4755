-- W6: the at-risk ranking over every open deal, computed for each request: the server remembers
-- a ranking until the next commit (src/db/memo.rs), and `Cache-Control: no-cache` asks for it
-- afresh, so W6 measures the scan as a server being written to runs it.
package.path = "bench/wrk/?.lua;" .. package.path
local c = require("common")
function init() c.init() end
local headers = {}
for k, v in pairs(c.headers) do headers[k] = v end
headers["Cache-Control"] = "no-cache"
function request() return wrk.format("GET", "/api/v1/deals/at-risk", headers) end
done = c.report
