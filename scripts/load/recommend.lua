-- wrk script: GET /v1/users/{user}/recommend?n=10 for a user drawn
-- uniformly from 1..USERS (ML-100k's user ids), per request.
local users = tonumber(os.getenv("RECWAL_LOAD_USERS") or "943")
local counter = 0

function setup(thread)
   counter = counter + 1
   thread:set("seed", counter)
end

function init(args)
   math.randomseed(seed * 7919)
end

function request()
   return wrk.format("GET", "/v1/users/" .. math.random(1, users) .. "/recommend?n=10")
end
