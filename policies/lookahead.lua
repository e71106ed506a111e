-- lookahead.lua: prefetch as far ahead as free gpu memory allows (a byte budget, where the
-- YAML knob `prefetch: N` counts ops). Before op i, walk ops i, i+1, ... and ask for each
-- one's inputs that are not on the gpu yet, while their bytes fit in what is free on the gpu
-- now, less a reserve and less what the ops on the way will create. Stops at the first tensor
-- that does not fit, so loads are issued in the order the ops need them.

local MAX_OPS = 256   -- look no further ahead than this many ops
local RESERVE = 0.10  -- share of the gpu kept free for the planner's own moves

local function created(ctx, j)
  local bytes = 0
  for _, name in ipairs(ctx:op(j).writes) do
    if not ctx:resident(name, "gpu") then bytes = bytes + ctx:tensor(name).size end
  end
  return bytes
end

function prefetch(ctx, i)
  local cap = ctx:capacity("gpu")
  local free = cap - ctx:used("gpu") - cap * RESERVE
  if i > 1 then free = free - created(ctx, i - 1) end
  local want, seen = {}, {}
  for j = i, math.min(ctx.op_count, i + MAX_OPS - 1) do
    local op = ctx:op(j)
    if op.device == "gpu" then
      for _, name in ipairs(op.reads) do
        -- Only tensors that exist somewhere can be loaded; the ones an op on the way creates
        -- are counted in `created` instead.
        if not seen[name] and not ctx:resident(name, "gpu")
            and (ctx:resident(name, "host") or ctx:resident(name, "nvme")) then
          seen[name] = true
          local size = ctx:tensor(name).size
          if size > free then return want end
          free = free - size
          want[#want + 1] = name
        end
      end
      free = free - created(ctx, j)
      if free <= 0 then return want end
    end
  end
  return want
end
