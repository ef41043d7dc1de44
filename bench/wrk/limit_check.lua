-- Rate-limit check: each wrk thread cycles over 64 limits of its own, generous enough that
-- checks are allowed (a denied check, 429, is an answer too). SHARED=1: every client checks
-- one limit of the first token's user, "bench-shared", at 1 000 a second, so most are denied.
package.path = "bench/wrk/?.lua;" .. package.path
local common = require("common")

setup = common.setup

local shared = os.getenv("SHARED") == "1"
local n = 0
local body = '{"max_requests":10000,"window_seconds":1}'
if shared then
  body = '{"max_requests":1000,"window_seconds":1}'
end

request = function()
  if shared then
    return wrk.format("POST", "/limits/bench-shared/check", common.headers(common.tokens[1], true), body)
  end
  n = n % 64 + 1
  local token = common.tokens[(id - 1) % #common.tokens + 1]
  return wrk.format("POST", "/limits/bench-" .. id .. "-" .. n .. "/check",
    common.headers(token, true), body)
end

common.count_answers(function(code) return code == 200 or code == 429 end)
