-- pin-layers.lua: keep the weights of the first and last layers and the embeddings on the
-- gpu once loaded; the rest come and go as the default policy would. A weight's layer is the
-- first number in its name ("layers.0.wq", "w7"); the first and last layers are the lowest
-- and highest numbers among the graph's weights. Embeddings are weights whose name matches
-- one of EMBEDDINGS. A pinned copy leaves only when nothing else can make room, so the plan
-- never fails for pinning. YAML's `keep` needs the names written out for each graph; this
-- works them out from the graph.

local EMBEDDINGS = {"embed", "^tok", "wte", "^head", "lm_head"}

local pinned -- name -> true, worked out on the first call (each plan starts afresh)

local function find_pinned(ctx)
  local weights, lo, hi = {}, nil, nil
  for i = 1, ctx.op_count do
    for _, name in ipairs(ctx:op(i).reads) do
      if weights[name] == nil and ctx:tensor(name).kind == "weight" then
        local layer = tonumber(name:match("%d+"))
        weights[name] = layer or false
        if layer then
          lo = math.min(lo or layer, layer)
          hi = math.max(hi or layer, layer)
        end
      end
    end
  end
  pinned = {}
  for name, layer in pairs(weights) do
    local keep = layer == lo or layer == hi
    for _, pattern in ipairs(EMBEDDINGS) do
      keep = keep or name:find(pattern) ~= nil
    end
    if keep then pinned[name] = true end
  end
end

function victim(ctx, tier, need, candidates)
  if tier ~= "gpu" then return candidates end
  if not pinned then find_pinned(ctx) end
  local order = {}
  for _, name in ipairs(candidates) do
    if not pinned[name] then order[#order + 1] = name end
  end
  for _, name in ipairs(candidates) do
    if pinned[name] then order[#order + 1] = name end
  end
  return order
end
