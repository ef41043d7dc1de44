-- Config get (default) or put (PUT=1): get reads one key that bench/run.sh stored; put
-- writes 64 keys per wrk thread in turn, each put a new version.
package.path = "bench/wrk/?.lua;" .. package.path
local common = require("common")
local put = os.getenv("PUT") == "1"

setup = common.setup

local n = 0

request = function()
  local token = common.tokens[(id - 1) % #common.tokens + 1]
  if not put then
    return wrk.format("GET", "/config/bench-settings", common.headers(token, false))
  end
  n = n + 1
  return wrk.format("PUT", "/config/bench-" .. id .. "-" .. (n % 64),
    common.headers(token, true), '{"value":{"replicas":' .. n .. ',"region":"eu-west-1"}}')
end

common.count_answers(function(code) return code == 200 end)
