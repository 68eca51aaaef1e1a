-- wrk script for scripts/load-test.sh. Without arguments it reports on the URL wrk was given.
-- With `-- BODIES_FILE THREADS` it POSTs /attest/submit, each request a distinct signed body from
-- the file (thread t sends lines t+1, t+1+THREADS, ...; a thread that runs out sends its last body
-- again, which the node refuses as a replay and wrk counts as non-2xx).
local bodies, idx, step = nil, 0, 1
local counter = 0

function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
end

function init(args)
  if args[1] then
    bodies = {}
    for line in io.lines(args[1]) do bodies[#bodies + 1] = line end
    step = tonumber(args[2] or "1")
    idx = tid + 1 - step
    wrk.method = "POST"
    wrk.headers["Content-Type"] = "application/json"
  end
end

function request()
  if bodies == nil then return wrk.request() end
  if idx + step <= #bodies then idx = idx + step end
  return wrk.format("POST", "/attest/submit", nil, bodies[idx])
end

function done(summary, latency, requests)
  local secs = summary.duration / 1e6
  io.write(string.format(
    'RESULT {"requests":%d,"seconds":%.3f,"rps":%.1f,"non2xx":%d,"socket_errors":%d,"p50_ms":%.3f,"p90_ms":%.3f,"p99_ms":%.3f,"p999_ms":%.3f,"max_ms":%.3f}\n',
    summary.requests, secs, summary.requests / secs, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    latency:percentile(99.9) / 1000, latency.max / 1000))
end
