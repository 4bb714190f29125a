-- 90/10 read/write: GET /users/{random}; writes are half POST of a new user,
-- half PATCH of an existing one's last name.
-- Arguments: N G TAG [WRITE_PERCENT=10]
require "common"
require "writes"

local users, groups, tag, write_percent

function init(args)
  users = tonumber(args[1])
  groups = tonumber(args[2])
  tag = args[3]
  write_percent = tonumber(args[4] or "10")
  seed_random()
end

function request()
  local roll = math.random() * 100
  if roll < write_percent / 2 then
    return post_user(tag, groups)
  elseif roll < write_percent then
    return patch_user(users)
  end
  return wrk.format("GET", string.format("/users/u%07d", math.random(0, users - 1)))
end
