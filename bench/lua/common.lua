-- Shared by every bench script: a thread number for each wrk thread, a
-- per-thread random seed, and a JSON summary printed when the run is done.
-- wrk runs each thread in its own Lua state; setup() runs in the main one.

local next_thread = 0

function setup(thread)
  thread:set("thread_number", next_thread)
  next_thread = next_thread + 1
end

-- Call from init(): distinct, repeatable random ids per thread.
function seed_random()
  math.randomseed(1000003 * ((thread_number or 0) + 1))
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_us": %d, "bytes": %d, '
      .. '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, '
      .. '"latency_us": {"p50": %d, "p90": %d, "p99": %d, "max": %d, "mean": %.1f}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean
  ))
end
