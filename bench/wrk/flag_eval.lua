-- Flag evaluation: one flag at a 50 % rollout (bench/run.sh sets it), many subjects.
package.path = "bench/wrk/?.lua;" .. package.path
local common = require("common")

setup = common.setup

local n = 0

request = function()
  n = n % 100000 + 1
  local token = common.tokens[(id - 1) % #common.tokens + 1]
  return wrk.format("GET", "/flags/bench-rollout?subject=user-" .. id .. "-" .. n,
    common.headers(token, false))
end

common.count_answers(function(code) return code == 200 end)
