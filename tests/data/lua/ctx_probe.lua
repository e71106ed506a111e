-- Exercises every ctx function once, at op 2, and logs what it sees.
local function show(v)
  if type(v) == "table" then return table.concat(v, ",") end
  return tostring(v)
end
function prefetch(ctx, i)
  if i ~= 2 then return nil end
  ctx:log("op_count " .. ctx.op_count)
  local op = ctx:op(1)
  ctx:log(string.format("op 1: %s %s reads=%s writes=%s flops=%.0f device=%s", op.name, op.kind,
                        show(op.reads), show(op.writes), op.flops, op.device))
  local t = ctx:tensor("w1")
  ctx:log(string.format("tensor %s size=%d kind=%s home=%s dtype=%s", t.name, t.size, t.kind,
                        show(t.home), show(t.dtype)))
  ctx:log("tensor a0 home=" .. show(ctx:tensor("a0").home) .. " missing=" .. show(ctx:tensor("nope")))
  ctx:log("next_use w1 after 0: " .. show(ctx:next_use("w1", 0)) .. ", a0 after 2: " ..
          show(ctx:next_use("a0", 2)))
  ctx:log("resident w0 gpu=" .. show(ctx:resident("w0", "gpu")) .. " host=" ..
          show(ctx:resident("w0", "host")) .. " nvme=" .. show(ctx:resident("w0", "nvme")))
  ctx:log("used gpu " .. ctx:used("gpu") .. " of " .. ctx:capacity("gpu") .. ", host capacity " ..
          ctx:capacity("host"))
  ctx:log("same table: " .. show(ctx:op(1) == op))
  print("print works too")
  return {}
end
function after_op(ctx, i)
  if i == 1 then
    ctx:offload("a0", "host") -- a copy on host; the gpu copy stays
    ctx:log("after offload: a0 host=" .. show(ctx:resident("a0", "host")))
    ctx:evict("a0", "gpu")    -- allowed now: host holds it
    ctx:log("after evict: a0 gpu=" .. show(ctx:resident("a0", "gpu")))
  end
end
