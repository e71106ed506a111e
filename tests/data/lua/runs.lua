-- Counts its calls in a global: each planning run must start from 0.
calls = 0
function prefetch(ctx, i)
  calls = calls + 1
  if i == ctx.op_count then ctx:log("calls " .. calls) end
end
