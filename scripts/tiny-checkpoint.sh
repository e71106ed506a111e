#!/usr/bin/env bash
# Writes a small llama-shaped safetensors checkpoint, byte by byte, for trying `ferry import`
# and for its tests: an embedding, LAYERS decoder layers (norms, q/k/v/o, gate/up/down), a
# final norm and an output head, in bf16, with random bytes as values.
#
#   scripts/tiny-checkpoint.sh OUT [LAYERS] [HIDDEN] [VOCAB] [SHARDS]
#
# With SHARDS 1 (the default) OUT is the .safetensors file; with more, OUT is a folder that
# receives model-0000K-of-0000N.safetensors files and model.safetensors.index.json.
set -euo pipefail
out=${1:?usage: tiny-checkpoint.sh OUT [LAYERS] [HIDDEN] [VOCAB] [SHARDS]}
layers=${2:-4}; hidden=${3:-64}; vocab=${4:-256}; shards=${5:-1}
ffn=$((hidden * 2))

# tensor lines "NAME ROWS COLS" (COLS 0: a 1-D tensor), in the order they are stored
tensors() {
    echo "model.embed_tokens.weight $vocab $hidden"
    for ((l = 0; l < layers; l++)); do
        p="model.layers.$l"
        echo "$p.input_layernorm.weight $hidden 0"
        for w in q k v o; do echo "$p.self_attn.${w}_proj.weight $hidden $hidden"; done
        echo "$p.post_attention_layernorm.weight $hidden 0"
        echo "$p.mlp.gate_proj.weight $ffn $hidden"
        echo "$p.mlp.up_proj.weight $ffn $hidden"
        echo "$p.mlp.down_proj.weight $hidden $ffn"
    done
    echo "model.norm.weight $hidden 0"
    echo "lm_head.weight $vocab $hidden"
}

le64() { # an unsigned number as 8 little-endian bytes
    local n=$1 i
    for ((i = 0; i < 8; i++)); do printf "\\x$(printf %02x $(((n >> (8 * i)) & 255)))"; done
}

# write_file FILE < tensor lines: the header, padded with spaces to 8 bytes, then the data
write_file() {
    local file=$1 json="{\"__metadata__\":{\"format\":\"pt\"}" at=0 name rows cols bytes shape
    while read -r name rows cols; do
        if ((cols)); then bytes=$((rows * cols * 2)); shape="[$rows,$cols]"
        else bytes=$((rows * 2)); shape="[$rows]"; fi
        json+=",\"$name\":{\"dtype\":\"BF16\",\"shape\":$shape,\"data_offsets\":[$at,$((at + bytes))]}"
        at=$((at + bytes))
    done
    json+="}"
    while ((${#json} % 8)); do json+=" "; done
    { le64 ${#json}; printf '%s' "$json"; head -c "$at" /dev/urandom; } >"$file"
}

if ((shards <= 1)); then
    tensors | write_file "$out"
    exit 0
fi
mkdir -p "$out"
mapfile -t all < <(tensors)
per=$(((${#all[@]} + shards - 1) / shards))
map=""
for ((s = 0; s < shards; s++)); do
    shard=$(printf "model-%05d-of-%05d.safetensors" $((s + 1)) "$shards")
    printf '%s\n' "${all[@]:s*per:per}" | write_file "$out/$shard"
    for line in "${all[@]:s*per:per}"; do
        map+="${map:+,}"$'\n'"    \"${line%% *}\": \"$shard\""
    done
done
printf '{\n  "metadata": {},\n  "weight_map": {%s\n  }\n}\n' "$map" >"$out/model.safetensors.index.json"
