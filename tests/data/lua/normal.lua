-- A well-behaved policy: each hook returns what the planner expects.
calls = 0
print("loading normal.lua")

function prefetch(ctx, i)
  calls = calls + 1
  print("prefetch", i)
  return {"w" .. i, "w" .. (i + 1)}
end

function victim(ctx, tier, need, candidates)
  local out = {}
  for _, name in ipairs(candidates) do
    if name:match("^act") then out[#out + 1] = name end
  end
  table.sort(out)
  return out
end

function after_op(ctx, i) end

function sizes(n) return n * 2, n / 4, "x" .. n end

function count_calls() return calls end

function random3() return math.random(1000), math.random(1000), math.random(1000) end

function reseed()
  math.randomseed()
  return math.random(1000)
end

function gc_count() return collectgarbage("count") end

-- Everyday string work stays well inside the budgets.
function strings()
  local layer = ("layers.12.attn.weight"):match("^layers%.(%d+)%.")
  local words = select(2, string.rep("ab cd ", 10000):gsub("%s+", "_"))
  local found = string.find(string.rep("x", 100000) .. "needle", "needle", 1, true)
  local n = 0
  for _ in ("a,b,c,d"):gmatch("[^,]+") do n = n + 1 end
  return layer, words, found, n, string.rep("", math.maxinteger), utf8.len("h\u{e9}llo")
end

-- A text chunk through load() is fine.
function load_text() return load("return 1 + 1")() end

-- Errors a script raises and catches itself stay the script's business.
function caught()
  local ok, msg = pcall(error, "inner")
  return ok, msg
end

function set_global(v) shared = v end
function get_global() return shared end
function break_string_lib() string.upper = nil end
function upper(s) return s:upper() end

function ok() return 42 end
