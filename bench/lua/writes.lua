-- Write requests shared by post_users.lua and mix.lua.

local created = 0
local json_headers = { ["Content-Type"] = "application/json" }
local patch_headers = { ["Content-Type"] = "application/merge-patch+json" }

-- POST /users/{new userid}: unique across threads and runs (tag), in two
-- random small groups.
function post_user(tag, groups)
  created = created + 1
  local first = math.random(0, groups - 1)
  local second = (first + math.random(1, groups - 1)) % groups
  local body = string.format(
    '{"first_name": "Bench", "last_name": "Writer %d", "groups": ["g%05d", "g%05d"]}',
    created, first, second
  )
  local path = string.format("/users/w%s-%d-%d", tag, thread_number or 0, created)
  return wrk.format("POST", path, json_headers, body)
end

-- PATCH /users/{existing userid}: a new last name, groups untouched.
function patch_user(users)
  local n = math.random(0, users - 1)
  local body = string.format('{"last_name": "Renamed %d"}', math.random(0, 999999))
  return wrk.format("PATCH", string.format("/users/u%07d", n), patch_headers, body)
end
