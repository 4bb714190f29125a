-- GET /groups/{name}, names g00000 .. g{G-1} picked at random.
-- Arguments: G
require "common"

local groups

function init(args)
  groups = tonumber(args[1])
  seed_random()
end

function request()
  return wrk.format("GET", string.format("/groups/g%05d", math.random(0, groups - 1)))
end
