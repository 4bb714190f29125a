-- POST /users/{userid} with new, unique userids, sustained.
-- Arguments: TAG G   (TAG: lower-case letters and digits, unique per run)
require "common"
require "writes"

local tag, groups

function init(args)
  tag = args[1]
  groups = tonumber(args[2])
  seed_random()
end

function request()
  return post_user(tag, groups)
end
