-- wrk script: POST /v1/event, one view per request, each with its own
-- event id (the production path: deduplicated, logged, group-committed
-- under the server's default durability).
local users = tonumber(os.getenv("RECWAL_LOAD_USERS") or "943")
local items = tonumber(os.getenv("RECWAL_LOAD_ITEMS") or "1682")
local run = os.getenv("RECWAL_LOAD_RUN") or "run"
local counter = 0

function setup(thread)
   counter = counter + 1
   thread:set("thread_id", counter)
end

function init(args)
   math.randomseed(thread_id * 104729)
   sent = 0
end

function request()
   sent = sent + 1
   local body = string.format(
      '{"user":"%d","item":"%d","kind":"view","event_id":"%s-e-%d-%d"}',
      math.random(1, users), math.random(1, items), run, thread_id, sent)
   return wrk.format("POST", "/v1/event", {["Content-Type"] = "application/json"}, body)
end
