-- Rate-limit check: each wrk thread cycles over 64 limits of its own, generous enough that
-- checks are allowed (a denied check, 429, is an answer too).
package.path = "bench/wrk/?.lua;" .. package.path
local common = require("common")

setup = common.setup

local n = 0
local body = '{"max_requests":10000,"window_seconds":1}'

request = function()
  n = n % 64 + 1
  local token = common.tokens[(id - 1) % #common.tokens + 1]
  return wrk.format("POST", "/limits/bench-" .. id .. "-" .. n .. "/check",
    common.headers(token, true), body)
end

common.count_answers(function(code) return code == 200 or code == 429 end)
