os.execute("touch /tmp/ferry-pwned")
function prefetch(ctx, i) end
