-- Hooks that return the wrong kinds of values.
function number_in_list() return {"a", "b", 3} end
function not_a_table() return 42 end
function with_key() return {"a", x = 1} end
function with_hole() return {"a", nil, "c"} end
function nul_name() return {"a\0b"} end
function nested() return {{"a"}} end
function float_size() return 1.5 end
function string_size() return "12" end
function func_result() return print end
function second_bad() return {"a"}, true end
function infinite() return 1 / 0 end
function nothing() end
function good() return {"x", "y"}, 4096, 2.5, "name" end
function ok() return 42 end
