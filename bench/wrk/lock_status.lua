-- Lock status, a read: every client asks about one lock that bench/run.sh acquired with a
-- long TTL, so each answer is the holder's lease.
package.path = "bench/wrk/?.lua;" .. package.path
local common = require("common")

setup = common.setup

request = function()
  local token = common.tokens[(id - 1) % #common.tokens + 1]
  return wrk.format("GET", "/locks/bench-held", common.headers(token, false))
end

common.count_answers(function(code) return code == 200 end)
