function victim(ctx, tier, need, candidates)
  while true do end
end
