-- W3: create a lead (each one new).
package.path = "bench/wrk/?.lua;" .. package.path
local c = require("common")
function init() c.init() end
function request() return wrk.format("POST", "/api/v1/leads", c.headers, c.new_lead_body()) end
done = c.report
