-- The reference: etcd 3.4's lock cycle through its JSON gateway. Acquire is a txn that puts
-- the key, attached to a lease (LEASE, granted by bench/run.sh), only if it does not exist;
-- release deletes it. Distinct keys per wrk thread, as in lock_cycle.lua.
local lease = assert(os.getenv("LEASE"), "set LEASE to an etcd lease id")
local threads = {}
local counter = 0

setup = function(thread)
  counter = counter + 1
  thread:set("id", counter)
  threads[#threads + 1] = thread
end

local alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local function base64(s)
  return ((s:gsub(".", function(x)
    local r, b = "", x:byte()
    for i = 8, 1, -1 do r = r .. (b % 2 ^ i - b % 2 ^ (i - 1) > 0 and "1" or "0") end
    return r
  end) .. "0000"):gsub("%d%d%d?%d?%d?%d?", function(x)
    if #x < 6 then return "" end
    local c = 0
    for i = 1, 6 do c = c + (x:sub(i, i) == "1" and 2 ^ (6 - i) or 0) end
    return alphabet:sub(c + 1, c + 1)
  end) .. ({ "", "==", "=" })[#s % 3 + 1])
end

local next_name = 0
local issued = {}    -- keys of acquires sent, oldest first
local pending = {}   -- keys acquired, to release
local headers = { ["Content-Type"] = "application/json" }

request = function()
  local key = table.remove(pending)
  if key then
    return wrk.format("POST", "/v3/kv/deleterange", headers, '{"key":"' .. key .. '"}')
  end
  next_name = next_name + 1
  key = base64("lock/bench-" .. id .. "-" .. next_name)
  issued[#issued + 1] = key
  return wrk.format("POST", "/v3/kv/txn", headers,
    '{"compare":[{"target":"CREATE","key":"' .. key .. '","create_revision":"0"}],' ..
    '"success":[{"request_put":{"key":"' .. key .. '","value":"aG9sZGVy","lease":"' ..
    lease .. '"}}]}')
end

-- etcd's txn answer does not name the key: a granted acquire releases the oldest key sent
-- (keys are never reused, so every acquire is granted).
response = function(status, headers_, body)
  counts = counts or {}
  counts[status] = (counts[status] or 0) + 1
  if status == 200 and string.find(body, '"succeeded":true', 1, true) then
    pending[#pending + 1] = table.remove(issued, 1)
  end
end

done = function(summary, latency)
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.timeout + summary.errors.status
  io.write(string.format("RESULT %.0f %.3f %.3f %d\n",
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, errors))
end
