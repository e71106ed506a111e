/* Shared helpers for the cmocka tests: fixture paths and scratch folders. */
#ifndef FERRY_TEST_UTIL_H
#define FERRY_TEST_UTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <unistd.h>

/* Path of a fixture under tests/data, in a static buffer (one at a time). */
static inline const char *fy_test_data(const char *rel)
{
    static char path[4096];
    snprintf(path, sizeof path, "%s/%s", FY_TEST_DATA, rel);
    return path;
}

/* A fresh scratch folder under the build tree (or TMPDIR), malloc'ed. */
static inline char *fy_test_scratch(const char *tag)
{
    const char *base = getenv("TMPDIR");
    char tmpl[4096];
    snprintf(tmpl, sizeof tmpl, "%s/ferry-%s-XXXXXX", base ? base : "/tmp", tag);
    char *dir = mkdtemp(tmpl);
    assert_non_null(dir);
    return strdup(dir);
}

/* Removes a scratch folder and what is in it (one level). */
static inline void fy_test_scratch_remove(char *dir)
{
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    int rc = system(cmd);
    (void)rc;
    free(dir);
}

/* Entries of a folder other than . and ..; 0 for a folder that does not exist (the tests use
 * it to show that a run left nothing behind). */
static inline size_t fy_test_dir_entries(const char *path)
{
    DIR *d = opendir(path);
    size_t n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    if (d) closedir(d);
    return n;
}

/* Reads a whole file into a malloc'ed buffer; returns 0 or -1. */
static inline int fy_file_read_all_for_test(const char *path, char **data, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    *data = malloc((size_t)n + 1);
    *len = fread(*data, 1, (size_t)n, f);
    fclose(f);
    return *len == (size_t)n ? 0 : -1;
}

#endif
