-- A hook that fails: the line numbers below are checked by test_lua_sandbox.c.
local function helper(t)
  return t.missing.field
end

function victim(ctx, tier, need, candidates)
  local r = helper({})
  return r
end

function raise_table() error({code = 1}) end
function raise_plain() error("plain message", 0) end
function raise_msg() error("with position") end

function ok() return 42 end
