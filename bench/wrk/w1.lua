-- W1: get a lead by a random id.
package.path = "bench/wrk/?.lua;" .. package.path
local c = require("common")
local leads = c.ids("leads")
local path = c.target == "clozup" and "/api/v1/leads/" or "/api/collections/leads/records/"
function init() c.init() end
function request() return c.get(path .. c.pick(leads)) end
done = c.report
