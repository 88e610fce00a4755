-- W6: the at-risk ranking over every open deal.
package.path = "bench/wrk/?.lua;" .. package.path
local c = require("common")
function init() c.init() end
function request() return c.get("/api/v1/deals/at-risk") end
done = c.report
