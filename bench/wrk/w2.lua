-- W2: a filtered, sorted page of 25 deals: the open deals of one random owner, largest first.
package.path = "bench/wrk/?.lua;" .. package.path
local c = require("common")
local owners = c.ids("owners")
function init() c.init() end
function request()
  local owner = c.pick(owners)
  if c.target == "clozup" then
    return c.get("/api/v1/deals?status=open&owner_id=" .. owner .. "&sort=-value&per_page=25")
  end
  return c.get("/api/collections/deals/records?filter=" ..
    "(status%3D'open'%26%26owner%3D'" .. owner .. "')&sort=-value&perPage=25")
end
done = c.report
