-- Lock acquire + release on distinct names: every acquire is followed, on the same wrk
-- thread, by the release of a lease it was granted. HOT=1: every client on one name.
package.path = "bench/wrk/?.lua;" .. package.path
local common = require("common")
local hot = os.getenv("HOT") == "1"
-- Set by bench/run.sh when two wrk processes run at once, so their names differ.
local prefix = os.getenv("PREFIX") or ""

setup = common.setup

local next_name = 0
local pending = {}   -- leases granted and not yet released: {path, lease_id}

request = function()
  local token = common.tokens[(id - 1) % #common.tokens + 1]
  local lease = table.remove(pending)
  if lease then
    return wrk.format("POST", lease.path .. "/release", common.headers(token, true),
      '{"lease_id":"' .. lease.lease_id .. '"}')
  end
  next_name = next_name % 4096 + 1
  local name = hot and "hot" or ("bench-" .. prefix .. id .. "-" .. next_name)
  -- A client id of its own per attempt: on the hot lock, every other attempt conflicts.
  return wrk.format("POST", "/locks/" .. name .. "/acquire", common.headers(token, true),
    '{"ttl_seconds":30,"client_id":"c' .. prefix .. id .. "-" .. next_name .. '"}')
end

response = function(status, headers, body)
  common.count(status)
  if status == 200 then
    local lease_id = string.match(body, '"lease_id":"([^"]+)"')
    local name = string.match(body, '"name":"([^"]+)"')
    if lease_id and name then
      pending[#pending + 1] = { path = "/locks/" .. name, lease_id = lease_id }
    end
  end
end

done = function(summary, latency, requests)
  common.report(summary, latency, function(code) return code == 200 or (hot and code == 409) end)
end
