-- cost-aware.lua: when the planner needs room, evict what is cheapest to bring back.
-- A clean copy (one that also lives on a lower tier) costs one reload; a dirty one (the only
-- up-to-date copy, such as a fresh activation) costs an offload now and a reload later; a
-- copy that nothing reads again costs nothing (or its write-back, when dirty). Costs are
-- bytes over the link's rate. Among equal costs, the copy needed last leaves first (Belady).

-- Link rates in bytes per second: those of ferry's default machine. Set them to yours
-- (`ferry probe` measures them).
local H2D, D2H = 55e9, 55e9
local NVME_READ, NVME_WRITE = 3e9, 2e9

-- Seconds that evicting name from tier costs, counting the reload at its next use.
local function cost(ctx, name, tier, next_use)
  local size = ctx:tensor(name).size
  if tier == "gpu" then
    local clean = ctx:resident(name, "host") or ctx:resident(name, "nvme")
    local out = clean and 0 or size / D2H
    if not next_use then return out end
    local back = size / H2D
    if not ctx:resident(name, "host") and ctx:resident(name, "nvme") then
      back = back + size / NVME_READ
    end
    return out + back
  end
  -- host: a copy that is not on nvme must be written there first.
  local out = ctx:resident(name, "nvme") and 0 or size / NVME_WRITE
  if not next_use then return out end
  return out + size / NVME_READ
end

function victim(ctx, tier, need, candidates)
  local score, later = {}, {}
  for _, name in ipairs(candidates) do
    local n = ctx:next_use(name, 0)
    later[name] = n or math.huge
    score[name] = cost(ctx, name, tier, n)
  end
  table.sort(candidates, function(a, b)
    if score[a] ~= score[b] then return score[a] < score[b] end
    if later[a] ~= later[b] then return later[a] > later[b] end
    return a < b
  end)
  return candidates
end
