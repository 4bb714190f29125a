-- GET /users/{userid}, userids u0000000 .. u{N-1} picked at random.
-- Arguments: N
require "common"

local users

function init(args)
  users = tonumber(args[1])
  seed_random()
end

function request()
  return wrk.format("GET", string.format("/users/u%07d", math.random(0, users - 1)))
end
