/* The kernel registry: op kind -> (function, user pointer), one registry per device backend.
 * Entries are allocated one by one and never move or go away before the registry does, so a
 * pointer from fy_kernel_registry_find stays valid while kernels are added or replaced; a
 * replacement rewrites the entry in place. A handful of kinds makes a linear search the
 * fastest lookup, and the engine resolves each op's kernel once before a run anyway. */
#include "engine/kernels.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct fy_kernel_registry {
    fy_kernel **entries;
    size_t count, cap;
};

int fy_kernel_registry_create(fy_kernel_registry **out, fy_error *err)
{
    *out = calloc(1, sizeof **out);
    if (!*out) return fy_error_set(err, FY_ENOMEM, "out of memory for a kernel registry");
    return 0;
}

void fy_kernel_registry_destroy(fy_kernel_registry *reg)
{
    if (!reg) return;
    for (size_t i = 0; i < reg->count; i++) {
        free((char *)reg->entries[i]->kind);
        free(reg->entries[i]);
    }
    free(reg->entries);
    free(reg);
}

static fy_kernel *find_entry(const fy_kernel_registry *reg, const char *kind)
{
    for (size_t i = 0; i < reg->count; i++)
        if (strcmp(reg->entries[i]->kind, kind) == 0) return reg->entries[i];
    return NULL;
}

int fy_kernel_registry_add(fy_kernel_registry *reg, const char *kind, fy_kernel_fn fn, void *user,
                           fy_error *err)
{
    if (!reg) return fy_error_set(err, FY_EINVAL, "kernel registry is NULL");
    if (!kind || !*kind) return fy_error_set(err, FY_EINVAL, "a kernel needs a non-empty op kind");
    if (!fn) return fy_error_set(err, FY_EINVAL, "kernel '%s' has no function", kind);
    fy_kernel *entry = find_entry(reg, kind);
    if (entry) {
        entry->fn = fn;
        entry->user = user;
        return 1;
    }
    if (reg->count == reg->cap) {
        size_t cap = reg->cap ? reg->cap * 2 : 8;
        fy_kernel **grown = realloc(reg->entries, cap * sizeof *grown);
        if (!grown)
            return fy_error_set(err, FY_ENOMEM, "out of memory registering kernel '%s'", kind);
        reg->entries = grown;
        reg->cap = cap;
    }
    entry = malloc(sizeof *entry);
    char *copy = strdup(kind);
    if (!entry || !copy) {
        free(entry);
        free(copy);
        return fy_error_set(err, FY_ENOMEM, "out of memory registering kernel '%s'", kind);
    }
    *entry = (fy_kernel){.kind = copy, .fn = fn, .user = user};
    reg->entries[reg->count++] = entry;
    return 0;
}

const fy_kernel *fy_kernel_registry_find(const fy_kernel_registry *reg, const char *kind)
{
    if (!reg || !kind) return NULL;
    return find_entry(reg, kind);
}

size_t fy_kernel_registry_count(const fy_kernel_registry *reg)
{
    return reg ? reg->count : 0;
}

const fy_kernel *fy_kernel_registry_at(const fy_kernel_registry *reg, size_t index)
{
    return reg && index < reg->count ? reg->entries[index] : NULL;
}

int fy_kernel_registry_add_builtin_cpu(fy_kernel_registry *reg, fy_error *err)
{
    static const struct {
        const char *kind;
        fy_kernel_fn fn;
    } builtins[] = {
        {"matmul", fy_cpu_kernel_matmul}, {"relu", fy_cpu_kernel_relu}, {"add", fy_cpu_kernel_add},
        {"copy", fy_cpu_kernel_copy},     {"spin", fy_cpu_kernel_spin},
    };
    for (size_t i = 0; i < sizeof builtins / sizeof builtins[0]; i++) {
        int rc = fy_kernel_registry_add(reg, builtins[i].kind, builtins[i].fn, NULL, err);
        if (rc < 0) return rc;
    }
    return 0;
}

int fy_kernel_run(const fy_kernel_registry *reg, const fy_kernel_call *call, fy_error *err)
{
    if (!reg || !call || !call->op)
        return fy_error_set(err, FY_EINVAL, "kernel run without a registry, call or op");
    char label[160];
    fy_cpu_op_label(call, label, sizeof label);
    const char *kind = call->op->kind;
    const fy_kernel *kernel = kind ? find_entry(reg, kind) : NULL;
    if (!kernel) {
        char known[512];
        size_t len = 0;
        known[0] = '\0';
        for (size_t i = 0; i < reg->count && len < sizeof known; i++)
            len += (size_t)snprintf(known + len, sizeof known - len, "%s%s", i ? ", " : "",
                                    reg->entries[i]->kind);
        return fy_error_set(err, FY_ENOENT, "%s: no kernel for kind '%s' (known: %s)", label,
                            kind ? kind : "", reg->count ? known : "none");
    }
    fy_kernel_call with_user = *call;
    with_user.user = kernel->user;
    fy_error local = {0};
    int rc = kernel->fn(&with_user, &local);
    if (rc >= 0) return rc;
    if (!local.message[0])
        fy_error_set(&local, rc, "%s: kernel failed: %s", label, fy_status_message(rc));
    if (err) *err = local;
    return rc;
}

double fy_kernel_spin_seconds(const fy_op *op, double flops_per_s)
{
    if (!op) return 0;
    if (op->time > 0) return op->time;
    if (op->flops > 0 && flops_per_s > 0) return op->flops / flops_per_s;
    return 0;
}
