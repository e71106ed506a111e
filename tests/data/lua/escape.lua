-- Hostile: reaches for what the sandbox removes. Each hook is one attempt.
function use_os() return os.execute("touch /tmp/ferry-lua-sandbox-pwned") end
function use_io() return io.open("/etc/passwd"):read("a") end
function use_require() return require("os") end
function use_dofile() return dofile("/etc/passwd") end
function use_loadfile() return loadfile("/etc/passwd") end
function use_debug() return debug.getregistry() end
function use_coroutine() return coroutine.create(print) end
function use_dump() return string.dump(use_os) end
function use_dump_method() return ("x").dump(use_os) end
function use_gc_collect() return collectgarbage() end
function use_gc_stop() return collectgarbage("stop") end
function use_gc_step() return collectgarbage("step", 1000000) end
function use_finalizer() return setmetatable({}, {__gc = function() while true do end end}) end

-- s: a precompiled chunk passed in by the test.
function load_chunk(s)
  local f, msg = load(s)
  if not f then error(msg, 0) end
  return "loaded"
end
function load_binary_mode(s) return load(s, "x", "b") end
function load_signature() return load("\27Lua\84\0\25\147\13\10\26\10") end

-- Walks every table reachable from the globals, the string metatable and any metatable,
-- and returns the paths of keys that would mean an escape.
function reach()
  local bad = {execute = true, popen = true, open = true, dump = true, getregistry = true,
    sethook = true, loadlib = true, dofile = true, loadfile = true, require = true,
    searchpath = true, getupvalue = true, setupvalue = true, exit = true, remove = true,
    rename = true, tmpname = true, getenv = true, loaded = true, preload = true}
  local seen, found = {}, {}
  local function walk(t, path)
    if type(t) ~= "table" or seen[t] then return end
    seen[t] = true
    for k, v in pairs(t) do
      local p = path .. "." .. tostring(k)
      if bad[k] and not (t == table and k == "remove") then found[#found + 1] = p end
      walk(v, p)
      if type(v) == "table" then walk(getmetatable(v), p .. "<mt>") end
    end
  end
  walk(_G, "_G")
  walk(getmetatable(""), "<string mt>")
  walk(getmetatable(_G), "<_G mt>")
  -- _ENV games and load with an environment reach nothing more.
  local env = setmetatable({}, {__index = _G})
  local f = load("return os, io, debug, package, require", "x", "t", env)
  local ok, a, b, c, d, e = pcall(f)
  if ok and (a or b or c or d or e) then found[#found + 1] = "load env" end
  if rawget(_G, "os") or rawget(_ENV, "io") then found[#found + 1] = "rawget" end
  return found
end

-- _ENV and metatable games: every route gives nil.
function env_tricks()
  local via_env = (function()
    local _ENV = setmetatable({}, {__index = function(_, k) return rawget(_G, k) end})
    return os
  end)()
  local via_string_mt = rawget(getmetatable("").__index, "dump")
  setmetatable(_G, nil) -- drop the explainer: removed names are then plain nil
  return via_env, via_string_mt, os, require, debug
end

function ok() return 42 end
