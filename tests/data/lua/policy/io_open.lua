function prefetch(ctx, i)
  local f = io.open("/etc/passwd")
  return {}
end
