-- Hostile: exhausts memory while loading.
local t = {}
for i = 1, math.maxinteger do t[i] = string.rep("x", 1000) .. i end
