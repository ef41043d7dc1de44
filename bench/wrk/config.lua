-- Config get (default) or put (PUT=1): get reads one key that bench/run.sh stored; put
-- writes 64 keys per wrk thread in turn, each put a new version: a small value, or with
-- SERVICE=1 the service settings of bench/wrk/service.json (about 500 bytes), which
-- bench/config_put.sh also puts under bench/wrk/service.schema.json.
package.path = "bench/wrk/?.lua;" .. package.path
local common = require("common")
local put = os.getenv("PUT") == "1"

local service
if os.getenv("SERVICE") == "1" then
  local file = assert(io.open("bench/wrk/service.json"))
  service = '{"value":' .. file:read("*a"):gsub("%s+$", "") .. "}"
  file:close()
end

setup = common.setup

local n = 0

request = function()
  local token = common.tokens[(id - 1) % #common.tokens + 1]
  if not put then
    return wrk.format("GET", "/config/bench-settings", common.headers(token, false))
  end
  n = n + 1
  local body = service
    or '{"value":{"replicas":' .. n .. ',"region":"eu-west-1"}}'
  return wrk.format("PUT", "/config/bench-" .. id .. "-" .. (n % 64),
    common.headers(token, true), body)
end

common.count_answers(function(code) return code == 200 end)
