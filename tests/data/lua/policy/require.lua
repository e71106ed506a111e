local m = require("socket")
function prefetch(ctx, i) end
