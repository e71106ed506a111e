/* Tensor kinds and element types: their names, the aliases we accept (safetensors and
 * PyTorch spell them differently), and element sizes. */
#include "ferry/graph.h"

#include <string.h>

static const char *const kind_names[FY_TENSOR_KIND_COUNT] = {
    "weight", "input", "output", "activation", "gradient", "optimizer", "workspace",
};

const char *fy_tensor_kind_name(fy_tensor_kind kind)
{
    if ((int)kind >= 0 && kind < FY_TENSOR_KIND_COUNT) return kind_names[kind];
    return "unknown";
}

static const struct {
    const char *name;
    size_t bytes;
} dtypes[FY_DTYPE_COUNT] = {
    [FY_DTYPE_NONE] = {"none", 0},      [FY_DTYPE_F64] = {"f64", 8},
    [FY_DTYPE_F32] = {"f32", 4},        [FY_DTYPE_F16] = {"f16", 2},
    [FY_DTYPE_BF16] = {"bf16", 2},      [FY_DTYPE_F8_E4M3] = {"f8e4m3", 1},
    [FY_DTYPE_F8_E5M2] = {"f8e5m2", 1}, [FY_DTYPE_I64] = {"i64", 8},
    [FY_DTYPE_I32] = {"i32", 4},        [FY_DTYPE_I16] = {"i16", 2},
    [FY_DTYPE_I8] = {"i8", 1},          [FY_DTYPE_U8] = {"u8", 1},
    [FY_DTYPE_BOOL] = {"bool", 1},
};

static const struct {
    const char *alias;
    fy_dtype dtype;
} aliases[] = {
    {"float64", FY_DTYPE_F64},
    {"F64", FY_DTYPE_F64},
    {"float32", FY_DTYPE_F32},
    {"F32", FY_DTYPE_F32},
    {"float16", FY_DTYPE_F16},
    {"F16", FY_DTYPE_F16},
    {"half", FY_DTYPE_F16},
    {"bfloat16", FY_DTYPE_BF16},
    {"BF16", FY_DTYPE_BF16},
    {"F8_E4M3", FY_DTYPE_F8_E4M3},
    {"float8_e4m3fn", FY_DTYPE_F8_E4M3},
    {"F8_E5M2", FY_DTYPE_F8_E5M2},
    {"float8_e5m2", FY_DTYPE_F8_E5M2},
    {"int64", FY_DTYPE_I64},
    {"I64", FY_DTYPE_I64},
    {"int32", FY_DTYPE_I32},
    {"I32", FY_DTYPE_I32},
    {"int16", FY_DTYPE_I16},
    {"I16", FY_DTYPE_I16},
    {"int8", FY_DTYPE_I8},
    {"I8", FY_DTYPE_I8},
    {"uint8", FY_DTYPE_U8},
    {"U8", FY_DTYPE_U8},
    {"BOOL", FY_DTYPE_BOOL},
};

const char *fy_dtype_name(fy_dtype dtype)
{
    if ((int)dtype >= 0 && dtype < FY_DTYPE_COUNT) return dtypes[dtype].name;
    return "unknown";
}

int fy_dtype_parse(const char *text, fy_dtype *out)
{
    for (int i = 1; i < FY_DTYPE_COUNT; i++) {
        if (strcmp(dtypes[i].name, text) == 0) {
            *out = (fy_dtype)i;
            return 0;
        }
    }
    for (size_t i = 0; i < sizeof aliases / sizeof aliases[0]; i++) {
        if (strcmp(aliases[i].alias, text) == 0) {
            *out = aliases[i].dtype;
            return 0;
        }
    }
    return FY_EPARSE;
}

size_t fy_dtype_bytes(fy_dtype dtype)
{
    if ((int)dtype >= 0 && dtype < FY_DTYPE_COUNT) return dtypes[dtype].bytes;
    return 0;
}
