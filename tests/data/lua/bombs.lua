-- Hostile: runaway time, memory and stack. Each hook is one bomb.
function spin() while true do end end

function spin_caught()
  while true do pcall(function() while true do end end) end
end

function spin_xpcall()
  while true do xpcall(function() while true do end end, function() while true do end end) end
end

function rep_bomb() return string.rep("x", 1 << 30) end

function rep_bomb_caught()
  local ok, msg = pcall(string.rep, "x", 1 << 30)
  return "survived: " .. tostring(msg)
end

function table_bomb()
  local t, i = {}, 0
  while true do
    i = i + 1
    t[i] = {i}
  end
end

function concat_bomb()
  local s = ""
  while true do s = s .. "0123456789abcdef" end
end

function doubling_bomb()
  local s = "x"
  while true do s = s .. s end
end

function recurse()
  local function f(n) return 1 + f(n + 1) end
  return f(1)
end

function c_recurse()
  local t = setmetatable({}, {__index = function(t, k) return t[k] end})
  return t.x
end

function pattern_bomb()
  return string.rep("a", 100000):find(".-.-.-.-b")
end

function gsub_bomb()
  return (string.rep("a", 20000)):gsub("(a*)*b", "")
end

function match_bomb() return string.rep("a", 50000):match("(.-)(.-)(.-)x") end

function gmatch_bomb()
  for w in string.rep("ab", 50000):gmatch("a.-.-.-.-c") do end
end

function sort_bomb()
  table.sort(setmetatable({}, {__len = function() return 1 << 40 end}))
end

function remove_bomb()
  table.remove(setmetatable({}, {__len = function() return 1 << 40 end}), 1)
end

-- Scanning a big string again and again allocates nothing; the scans are charged.
function utf8_bomb()
  local s = string.rep("a", 1 << 23)
  while true do utf8.len(s) end
end

function move_bomb() return table.move({}, 1, math.maxinteger - 1, 2) end

function insert_bomb()
  local t = setmetatable({}, {__len = function() return 1 << 40 end})
  table.insert(t, 1, "x")
end

-- Long-string comparisons cost time inside single instructions: only the clock sees them.
function compare_loop()
  local a, b = string.rep("x", 1 << 22), string.rep("x", 1 << 22)
  while a == b do end
end

-- A to-be-closed variable whose __close loops: it runs while the budget error unwinds.
function close_bomb()
  local x <close> = setmetatable({}, {__close = function() while true do end end})
  while true do end
end

function ok() return 42 end
