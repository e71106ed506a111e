-- a hook with a typo: nothing would run
function Prefetch(ctx, i) end
