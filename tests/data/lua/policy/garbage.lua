function prefetch(ctx, i)
  return {42, true}
end
