-- The load of one benchmark scenario for wrk, configured by environment variables:
--   BENCH_MODE     hot | spread | read | list | reserve (reserve a unit of a random
--                  product, then fulfil a reservation this thread made, in turn)
--   BENCH_TOKEN    the API token sent with every request
--   BENCH_HOT_ID   the product every client decrements (hot)
--   BENCH_FIRST_ID, BENCH_LAST_ID   the products picked at random (spread, read)
-- Each thread counts the responses by status; done() prints one line that
-- bench/suite.py reads: BENCH_RESULT {json}.

local mode = os.getenv("BENCH_MODE") or "hot"
local token = os.getenv("BENCH_TOKEN") or ""
local hot_id = tonumber(os.getenv("BENCH_HOT_ID") or "1")
local first_id = tonumber(os.getenv("BENCH_FIRST_ID") or "1")
local last_id = tonumber(os.getenv("BENCH_LAST_ID") or "1")

local threads = {}
local thread_count = 0

function setup(thread)
  thread_count = thread_count + 1
  thread:set("thread_number", thread_count)
  table.insert(threads, thread)
end

function init(args)
  math.randomseed(os.time() * 100 + thread_number)
  statuses = {}
  headers = { ["Authorization"] = "Token " .. token, ["Content-Type"] = "application/json" }
  decrement_body = '{"quantity": 1}'
  reserve_body = '{"quantity": 1, "expires_in": 3600}'
  held = {}  -- reservations this thread made and has not fulfilled yet
end

function request()
  if mode == "hot" then
    return wrk.format("POST", "/api/products/" .. hot_id .. "/decrement/", headers, decrement_body)
  elseif mode == "spread" then
    local id = math.random(first_id, last_id)
    return wrk.format("POST", "/api/products/" .. id .. "/decrement/", headers, decrement_body)
  elseif mode == "reserve" then
    if #held > 0 then
      return wrk.format("POST", "/api/reservations/" .. table.remove(held) .. "/fulfil/", headers, "{}")
    end
    local id = math.random(first_id, last_id)
    return wrk.format("POST", "/api/products/" .. id .. "/reservations/", headers, reserve_body)
  elseif mode == "read" then
    return wrk.format("GET", "/api/products/" .. math.random(first_id, last_id) .. "/", headers)
  else
    return wrk.format("GET", "/api/products/", headers)
  end
end

function response(status, response_headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  if mode == "reserve" and status == 201 then
    table.insert(held, string.match(body, '"id":%s*(%d+)'))
  end
end

function done(summary, latency, requests)
  local counts = {}
  for _, thread in ipairs(threads) do
    for status, n in pairs(thread:get("statuses")) do
      local key = tostring(status)
      counts[key] = (counts[key] or 0) + n
    end
  end
  local parts = {}
  for status, n in pairs(counts) do
    table.insert(parts, string.format('"%s": %d', status, n))
  end
  local errors = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests": %d, "duration_us": %d, "p50_us": %d, "p95_us": %d, '
      .. '"p99_us": %d, "socket_errors": %d, "statuses": {%s}}\n',
    summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(95), latency:percentile(99),
    errors.connect + errors.read + errors.write + errors.timeout,
    table.concat(parts, ", ")
  ))
end
