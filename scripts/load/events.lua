-- wrk script: POST /v1/events, BATCH views per request (one log record),
-- each event with its own event id.
local users = tonumber(os.getenv("RECWAL_LOAD_USERS") or "943")
local items = tonumber(os.getenv("RECWAL_LOAD_ITEMS") or "1682")
local batch = tonumber(os.getenv("RECWAL_LOAD_BATCH") or "100")
local run = os.getenv("RECWAL_LOAD_RUN") or "run"
local counter = 0

function setup(thread)
   counter = counter + 1
   thread:set("thread_id", counter)
end

function init(args)
   math.randomseed(thread_id * 15485863)
   sent = 0
end

function request()
   sent = sent + 1
   local events = {}
   for at = 1, batch do
      events[at] = string.format(
         '{"user":"%d","item":"%d","kind":"view","event_id":"%s-b-%d-%d-%d"}',
         math.random(1, users), math.random(1, items), run, thread_id, sent, at)
   end
   local body = '{"events":[' .. table.concat(events, ",") .. ']}'
   return wrk.format("POST", "/v1/events", {["Content-Type"] = "application/json"}, body)
end
