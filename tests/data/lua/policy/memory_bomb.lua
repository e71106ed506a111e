function prefetch(ctx, i)
  local s = string.rep("x", 1 << 20)
  local t = {}
  for k = 1, 1000 do t[k] = s .. k end
  return {}
end
