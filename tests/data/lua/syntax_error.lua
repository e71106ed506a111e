-- A typo: the test checks the line.
function prefetch(ctx, i)
  return {"a" "b"}
end
