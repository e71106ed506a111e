/* The graph's digest: SHA-256 of its canonical YAML text, so a plan can record which
 * graph it was made for and refuse another version of it, whatever the file's layout. */
#include "graph/graph_model.h"

#include "core/hash.h"

#include <stdlib.h>

int fy_graph_digest(const fy_graph *g, char hex[65], fy_error *err)
{
    char *text;
    size_t len;
    int rc = fy_graph_to_yaml(g, &text, &len, err);
    if (rc < 0) return rc;
    fy_sha256_hex(text, len, hex);
    free(text);
    return 0;
}
