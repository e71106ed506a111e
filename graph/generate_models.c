/* The two synthetic model families of `ferry graph`: an mlp (one matmul per layer, as in
 * the design's example) and a llama-shaped decoder (per layer: norm, q/k/v projections,
 * attention, output projection and residual, then norm, gate/up, swiglu, down and
 * residual), each with flops for every op and, with train, backward and optimizer ops. */
#include "graph/generate.h"

#include <stdio.h>
#include <string.h>

#define NAME_MAX_LEN 96

int fy_graph_generate_mlp(const fy_mlp_params *p, fy_graph **out, fy_error *err)
{
    *out = NULL;
    if (p->layers < 1 || p->hidden < 1 || p->batch < 1)
        return fy_error_set(err, FY_EINVAL, "mlp needs at least 1 layer, hidden and batch");
    char name[64];
    snprintf(name, sizeof name, "mlp-%u", p->layers);
    fy_gen gen;
    if (fy_gen_start(&gen, name, p->dtype, p->weights_file, err) < 0) return gen.rc;
    fy_gen_tensor(&gen, "x", FY_TENSOR_INPUT, p->batch, p->hidden);
    double flops = 2.0 * (double)p->batch * (double)p->hidden * (double)p->hidden;
    char prev[NAME_MAX_LEN] = "x", w[NAME_MAX_LEN], a[NAME_MAX_LEN], op[NAME_MAX_LEN];
    for (unsigned i = 0; i < p->layers && gen.rc == 0; i++) {
        bool last = i + 1 == p->layers;
        snprintf(w, sizeof w, "w%u", i);
        snprintf(op, sizeof op, "fc%u", i);
        if (last)
            snprintf(a, sizeof a, "%s", p->train ? "logits" : "y");
        else
            snprintf(a, sizeof a, "a%u", i);
        fy_gen_tensor(&gen, w, FY_TENSOR_WEIGHT, p->hidden, p->hidden);
        fy_gen_tensor(&gen, a, last && !p->train ? FY_TENSOR_OUTPUT : FY_TENSOR_ACTIVATION,
                      p->batch, p->hidden);
        const char *reads[] = {prev, w, NULL};
        const char *writes[] = {a, NULL};
        fy_gen_op(&gen, op, "matmul", reads, writes, flops);
        snprintf(prev, sizeof prev, "%s", a);
    }
    if (p->train) fy_gen_add_training(&gen, "logits");
    return fy_gen_finish(&gen, out);
}

/* Formats "<layer>.<suffix>" into buf. */
static const char *lname(char *buf, unsigned layer, const char *suffix)
{
    snprintf(buf, NAME_MAX_LEN, "layers.%u.%s", layer, suffix);
    return buf;
}

static void matmul(fy_gen *gen, unsigned l, const char *op, const char *in, const char *w,
                   const char *outname, uint64_t rows, uint64_t k, uint64_t n)
{
    char o[NAME_MAX_LEN], wn[NAME_MAX_LEN], on[NAME_MAX_LEN];
    lname(wn, l, w);
    lname(on, l, outname);
    fy_gen_tensor(gen, wn, FY_TENSOR_WEIGHT, k, n);
    fy_gen_tensor(gen, on, FY_TENSOR_ACTIVATION, rows, n);
    const char *reads[] = {in, wn, NULL};
    const char *writes[] = {on, NULL};
    fy_gen_op(gen, lname(o, l, op), "matmul", reads, writes, 2.0 * (double)rows * k * n);
}

/* Adds an elementwise-style op of the given kind. */
static void simple_op(fy_gen *gen, const char *name, const char *kind, const char *const *reads,
                      const char *outname, uint64_t rows, uint64_t cols, double flops)
{
    fy_gen_tensor(gen, outname, FY_TENSOR_ACTIVATION, rows, cols);
    const char *writes[] = {outname, NULL};
    fy_gen_op(gen, name, kind, reads, writes, flops);
}

/* The same, for the op whose result is the graph's output. */
static void output_op(fy_gen *gen, const char *name, const char *kind, const char *const *reads,
                      const char *outname, uint64_t rows, uint64_t cols, double flops)
{
    fy_gen_tensor(gen, outname, FY_TENSOR_OUTPUT, rows, cols);
    const char *writes[] = {outname, NULL};
    fy_gen_op(gen, name, kind, reads, writes, flops);
}

static void decoder_layer(fy_gen *gen, const fy_transformer_params *p, unsigned l, const char *h_in,
                          const char *h_out, bool is_output)
{
    uint64_t T = p->seq * p->batch, H = p->hidden, F = p->ffn;
    char a[NAME_MAX_LEN], b[NAME_MAX_LEN], c[NAME_MAX_LEN], d[NAME_MAX_LEN], o[NAME_MAX_LEN];
    double th = (double)T * (double)H;

    fy_gen_tensor(gen, lname(a, l, "attn_norm.w"), FY_TENSOR_WEIGHT, H, 0);
    const char *r1[] = {h_in, a, NULL};
    simple_op(gen, lname(o, l, "attn_norm"), "rmsnorm", r1, lname(b, l, "xa"), T, H, 4 * th);
    matmul(gen, l, "q", b, "wq", "q", T, H, H);
    matmul(gen, l, "k", b, "wk", "k", T, H, H);
    matmul(gen, l, "v", b, "wv", "v", T, H, H);
    const char *r2[] = {lname(a, l, "q"), lname(b, l, "k"), lname(c, l, "v"), NULL};
    /* QK^T and PV: 2 * 2 * batch * seq^2 * hidden; softmax is noise next to them. */
    double attn = 4.0 * (double)p->batch * (double)p->seq * (double)p->seq * (double)H;
    simple_op(gen, lname(o, l, "attn"), "attention", r2, lname(d, l, "ctx"), T, H, attn);
    matmul(gen, l, "o", d, "wo", "ao", T, H, H);
    const char *r3[] = {h_in, lname(a, l, "ao"), NULL};
    simple_op(gen, lname(o, l, "attn_res"), "add", r3, lname(b, l, "h1"), T, H, th);

    fy_gen_tensor(gen, lname(a, l, "mlp_norm.w"), FY_TENSOR_WEIGHT, H, 0);
    const char *r4[] = {lname(b, l, "h1"), a, NULL};
    simple_op(gen, lname(o, l, "mlp_norm"), "rmsnorm", r4, lname(c, l, "xm"), T, H, 4 * th);
    matmul(gen, l, "gate", c, "w_gate", "g", T, H, F);
    matmul(gen, l, "up", c, "w_up", "u", T, H, F);
    const char *r5[] = {lname(a, l, "g"), lname(b, l, "u"), NULL};
    simple_op(gen, lname(o, l, "act"), "swiglu", r5, lname(d, l, "gu"), T, F,
              4.0 * (double)T * (double)F);
    matmul(gen, l, "down", d, "w_down", "d", T, F, H);
    const char *r6[] = {lname(a, l, "h1"), lname(b, l, "d"), NULL};
    (is_output ? output_op : simple_op)(gen, lname(o, l, "mlp_res"), "add", r6, h_out, T, H, th);
}

int fy_graph_generate_transformer(const fy_transformer_params *p, fy_graph **out, fy_error *err)
{
    *out = NULL;
    if (p->layers < 1 || !p->hidden || !p->ffn || !p->heads || !p->seq || !p->batch)
        return fy_error_set(err, FY_EINVAL,
                            "transformer needs layers, hidden, ffn, heads, seq and batch >= 1");
    if (p->hidden % p->heads)
        return fy_error_set(err, FY_EINVAL, "hidden %llu is not a multiple of heads %llu",
                            (unsigned long long)p->hidden, (unsigned long long)p->heads);
    char name[64];
    snprintf(name, sizeof name, "transformer-%u", p->layers);
    fy_gen gen;
    if (fy_gen_start(&gen, name, p->dtype, p->weights_file, err) < 0) return gen.rc;
    uint64_t T = p->seq * p->batch, H = p->hidden;
    char h_in[NAME_MAX_LEN], h_out[NAME_MAX_LEN];
    if (p->vocab) {
        fy_gen_tensor_typed(&gen, "tokens", FY_TENSOR_INPUT, FY_DTYPE_I32, p->batch, p->seq);
        fy_gen_tensor(&gen, "embed.w", FY_TENSOR_WEIGHT, p->vocab, H);
        fy_gen_tensor(&gen, "h0", FY_TENSOR_ACTIVATION, T, H);
        const char *reads[] = {"tokens", "embed.w", NULL};
        const char *writes[] = {"h0", NULL};
        fy_gen_op(&gen, "embed", "embedding", reads, writes, (double)T * (double)H);
    } else {
        fy_gen_tensor(&gen, "h0", FY_TENSOR_INPUT, T, H);
    }
    snprintf(h_in, sizeof h_in, "h0");
    for (unsigned l = 0; l < p->layers && gen.rc == 0; l++) {
        bool last = l + 1 == p->layers;
        if (last && !p->vocab)
            snprintf(h_out, sizeof h_out, "%s", p->train ? "logits" : "y");
        else
            snprintf(h_out, sizeof h_out, "h%u", l + 1);
        decoder_layer(&gen, p, l, h_in, h_out, last && !p->vocab && !p->train);
        snprintf(h_in, sizeof h_in, "%s", h_out);
    }
    if (p->vocab) {
        fy_gen_tensor(&gen, "norm.w", FY_TENSOR_WEIGHT, H, 0);
        const char *r1[] = {h_in, "norm.w", NULL};
        simple_op(&gen, "norm", "rmsnorm", r1, "hn", T, H, 4.0 * (double)T * (double)H);
        fy_gen_tensor(&gen, "head.w", FY_TENSOR_WEIGHT, H, p->vocab);
        const char *logits = p->train ? "logits" : "y";
        fy_gen_tensor(&gen, logits, p->train ? FY_TENSOR_ACTIVATION : FY_TENSOR_OUTPUT, T,
                      p->vocab);
        const char *reads[] = {"hn", "head.w", NULL};
        const char *writes[] = {logits, NULL};
        fy_gen_op(&gen, "head", "matmul", reads, writes,
                  2.0 * (double)T * (double)H * (double)p->vocab);
    }
    if (p->train) fy_gen_add_training(&gen, "logits");
    return fy_gen_finish(&gen, out);
}
