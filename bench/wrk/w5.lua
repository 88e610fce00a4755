-- W5: the mix: 80% gets by id, 15% lists, 4% creates, 1% moves.
package.path = "bench/wrk/?.lua;" .. package.path
local c = require("common")
local leads, owners = c.ids("leads"), c.ids("owners")
local deals, stages = c.ids("open-deals"), c.ids("open-stages")
function init() c.init() end
function request()
  local roll = math.random(100)
  if roll <= 80 then
    return c.get("/api/v1/leads/" .. c.pick(leads))
  elseif roll <= 95 then
    return c.get("/api/v1/deals?status=open&owner_id=" .. c.pick(owners) .. "&sort=-value&per_page=25")
  elseif roll <= 99 then
    return wrk.format("POST", "/api/v1/leads", c.headers, c.new_lead_body())
  end
  return wrk.format("POST", "/api/v1/deals/" .. c.pick(deals) .. "/move", c.headers,
    '{"stage_id":"' .. c.pick(stages) .. '"}')
end
done = c.report
