-- Shared by every OctoStore workload: bearer tokens (one user per connection slot, from
-- the TOKENS environment variable, comma-separated), status counting, and the one-line
-- report that bench/run.sh reads.
local common = {}

local tokens = {}
for t in string.gmatch(os.getenv("TOKENS") or "", "[^,]+") do
  tokens[#tokens + 1] = t
end
assert(#tokens > 0, "set TOKENS to a comma-separated list of bearer tokens")
common.tokens = tokens

local threads = {}
local counter = 0

-- Each wrk thread gets an id (for distinct names) and a status table (read in done()).
function common.setup(thread)
  counter = counter + 1
  thread:set("id", counter)
  threads[#threads + 1] = thread
end

function common.headers(token, with_body)
  local h = { ["Authorization"] = "Bearer " .. token }
  if with_body then
    h["Content-Type"] = "application/json"
  end
  return h
end

-- Status counts of this thread (a global, so done() can read it with thread:get).
function common.count(status)
  counts = counts or {}
  counts[status] = (counts[status] or 0) + 1
end

-- One line for bench/run.sh: RESULT requests/s p50_ms p99_ms errors statuses.
-- `expected(code)` says which statuses are answers of the workload (not errors).
function common.report(summary, latency, expected)
  local total = {}
  for _, thread in ipairs(threads) do
    for code, n in pairs(thread:get("counts") or {}) do
      total[code] = (total[code] or 0) + n
    end
  end
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.timeout
  local statuses = {}
  for code, n in pairs(total) do
    if not expected(tonumber(code)) then
      errors = errors + n
    end
    statuses[#statuses + 1] = code .. ":" .. n
  end
  table.sort(statuses)
  io.write(string.format("RESULT %.0f %.3f %.3f %d %s\n",
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    errors, table.concat(statuses, ",")))
end

-- The response() and done() of a workload that only counts statuses: `expected(code)` says
-- which are its answers.
function common.count_answers(expected)
  response = function(status)
    common.count(status)
  end
  done = function(summary, latency)
    common.report(summary, latency, expected)
  end
end

return common
