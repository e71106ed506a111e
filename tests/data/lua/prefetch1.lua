-- The default prefetch (`prefetch: 1`) written as a hook: before op i-1 computes, bring op i's
-- inputs to the gpu when they fit in free memory. With `prefetch: 0` beside it, it gives the
-- same plan as the YAML default.
function prefetch(ctx, i)
  local want, free = {}, ctx:capacity("gpu") - ctx:used("gpu")
  for _, name in ipairs(ctx:op(i).reads) do
    if not ctx:resident(name, "gpu") and (ctx:resident(name, "host") or ctx:resident(name, "nvme")) then
      local size = ctx:tensor(name).size
      if size <= free then
        want[#want + 1] = name
        free = free - size
      end
    end
  end
  return want
end
