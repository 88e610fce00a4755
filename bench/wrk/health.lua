-- Anchor: the same server's bare /health, the framework's ceiling.
package.path = "bench/wrk/?.lua;" .. package.path
local c = require("common")
function init() c.init() end
function request() return c.get("/health") end
done = c.report
