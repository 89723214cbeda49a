-- wrk script for bench/bench_api.py: replays a request mix and reports what wrk alone cannot.
--
--   BENCH_PATHS=paths.txt BENCH_OUT=result.json wrk -t2 -c1000 -d60s --latency -s bench/lua/mix.lua URL
--
-- BENCH_PATHS: one request path per line (the mix, already weighted and shuffled); every thread
-- walks the list from its own random offset. BENCH_OUT: JSON written by done() with requests,
-- socket errors, p50/p90/p95/p99/p99.9/max latency (µs), statuses, X-Cache values,
-- X-Cache-Nginx values (nginx's micro-cache status, when present), X-Pricecat-Generation values
-- (the build each answer's data is from: a publish under load shows the turn-over), error codes of 4xx/5xx JSON bodies ("status:code") and body bytes (all, and 2xx/3xx only).

local threads = {}
local counter = 1

function setup(thread)
   thread:set("id", counter)
   counter = counter + 1
   table.insert(threads, thread)
end

function init(args)
   paths = {}
   local f = assert(io.open(os.getenv("BENCH_PATHS"), "r"))
   for line in f:lines() do
      if line ~= "" then paths[#paths + 1] = line end
   end
   f:close()
   math.randomseed(os.time() * 1000 + id)
   pos = math.random(1, #paths)
   statuses = {}
   xcache = {}
   xnginx = {}
   xgen = {}
   errcodes = {}
   body_bytes = 0
   responses = 0
   ok_bytes = 0
   ok_responses = 0
end

function request()
   pos = pos + 1
   if pos > #paths then pos = 1 end
   return wrk.format("GET", paths[pos])
end

function response(status, headers, body)
   local k = tostring(status)
   statuses[k] = (statuses[k] or 0) + 1
   local x = headers["X-Cache"] or headers["x-cache"] or "none"
   xcache[x] = (xcache[x] or 0) + 1
   local xn = headers["X-Cache-Nginx"]
   if xn then xnginx[xn] = (xnginx[xn] or 0) + 1 end
   local g = headers["X-Pricecat-Generation"] or headers["x-pricecat-generation"]
   if g then xgen[g] = (xgen[g] or 0) + 1 end
   if body then
      body_bytes = body_bytes + #body
      if status < 400 then
         ok_bytes = ok_bytes + #body
         ok_responses = ok_responses + 1
      else
         local code = string.match(body, '"code"%s*:%s*"([%w_]+)"') or "?"
         local ek = k .. ":" .. code
         errcodes[ek] = (errcodes[ek] or 0) + 1
      end
   end
   responses = responses + 1
end

local function json_counts(t)
   local parts = {}
   for k, v in pairs(t) do table.insert(parts, string.format('"%s": %d', k, v)) end
   return "{" .. table.concat(parts, ", ") .. "}"
end

function done(summary, latency, requests)
   local st, xc, xn, xg, ec, bytes, n, okb, okn = {}, {}, {}, {}, {}, 0, 0, 0, 0
   for _, t in ipairs(threads) do
      for k, v in pairs(t:get("statuses") or {}) do st[k] = (st[k] or 0) + v end
      for k, v in pairs(t:get("xcache") or {}) do xc[k] = (xc[k] or 0) + v end
      for k, v in pairs(t:get("xnginx") or {}) do xn[k] = (xn[k] or 0) + v end
      for k, v in pairs(t:get("xgen") or {}) do xg[k] = (xg[k] or 0) + v end
      for k, v in pairs(t:get("errcodes") or {}) do ec[k] = (ec[k] or 0) + v end
      bytes = bytes + (t:get("body_bytes") or 0)
      n = n + (t:get("responses") or 0)
      okb = okb + (t:get("ok_bytes") or 0)
      okn = okn + (t:get("ok_responses") or 0)
   end
   local e = summary.errors
   local out = assert(io.open(os.getenv("BENCH_OUT"), "w"))
   out:write(string.format(
      '{"requests": %d, "duration_us": %d, "bytes": %d, "responses": %d, "body_bytes": %d, ' ..
      '"ok_responses": %d, "ok_body_bytes": %d, ' ..
      '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, ' ..
      '"latency_us": {"p50": %d, "p90": %d, "p95": %d, "p99": %d, "p999": %d, "max": %d, ' ..
      '"mean": %.1f}, "statuses": %s, "x_cache": %s, "x_cache_nginx": %s, "generations": %s, "error_codes": %s}',
      summary.requests, summary.duration, summary.bytes, n, bytes, okn, okb,
      e.connect, e.read, e.write, e.status, e.timeout,
      latency:percentile(50), latency:percentile(90), latency:percentile(95),
      latency:percentile(99), latency:percentile(99.9), latency.max, latency.mean,
      json_counts(st), json_counts(xc), json_counts(xn), json_counts(xg), json_counts(ec)))
   out:close()
end
