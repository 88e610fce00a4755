-- W4: move a random open deal to a random open stage of its pipeline.
package.path = "bench/wrk/?.lua;" .. package.path
local c = require("common")
local deals = c.ids("open-deals")
local stages = c.ids("open-stages")
function init() c.init() end
function request()
  return wrk.format("POST", "/api/v1/deals/" .. c.pick(deals) .. "/move", c.headers,
    '{"stage_id":"' .. c.pick(stages) .. '"}')
end
done = c.report
