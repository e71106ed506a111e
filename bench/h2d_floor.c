/* The floor under a transfer-bound stream: N back-to-back cudaMemcpyAsync copies of SIZE bytes
 * host->gpu on one stream, alternating between two gpu slots, from sources allocated in different
 * ways (cudaHostAlloc; malloc then cudaHostRegister, as ferry pins caller buffers; page-aligned
 * memory then cudaHostRegister; 2 MiB-aligned memory advised to transparent huge pages then
 * cudaHostRegister), with no event per copy (events=0), an event after every copy (1), or an
 * event before and after every copy (2; 3 with blocking-sync events), as ferry's cuda device
 * times each item. Timed by CUDA events; prints the median of REPS runs per source. Not a
 * test: a measurement tool.
 *
 * usage: h2d_floor [COUNT=48] [MiB=128] [REPS=5] */
#include <cuda_runtime.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define CK(x)                                                                                      \
    do {                                                                                           \
        cudaError_t e_ = (x);                                                                      \
        if (e_ != cudaSuccess) {                                                                   \
            fprintf(stderr, "%s: %s\n", #x, cudaGetErrorString(e_));                               \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

static int cmp(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y;
}

/* Median ms of reps runs of count copies from src[i] to the two slots of gpu. */
static float run(void **src, int count, size_t size, char *gpu, int reps, int events)
{
    cudaStream_t s;
    CK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    cudaEvent_t a, b, *per = calloc((size_t)count, sizeof *per),
                      *pre = calloc((size_t)count, sizeof *pre);
    CK(cudaEventCreate(&a));
    CK(cudaEventCreate(&b));
    unsigned flags = events == 3 ? cudaEventBlockingSync : cudaEventDefault;
    for (int i = 0; i < count; i++) {
        CK(cudaEventCreateWithFlags(&per[i], flags));
        CK(cudaEventCreateWithFlags(&pre[i], flags));
    }
    float t[16];
    for (int r = -1; r < reps; r++) {
        CK(cudaEventRecord(a, s));
        for (int i = 0; i < count; i++) {
            if (events > 1) CK(cudaEventRecord(pre[i], s));
            CK(cudaMemcpyAsync(gpu + (size_t)(i & 1) * size, src[i], size, cudaMemcpyHostToDevice,
                               s));
            if (events) CK(cudaEventRecord(per[i], s));
        }
        CK(cudaEventRecord(b, s));
        CK(cudaEventSynchronize(b));
        if (r >= 0) CK(cudaEventElapsedTime(&t[r], a, b));
    }
    qsort(t, (size_t)reps, sizeof *t, cmp);
    for (int i = 0; i < count; i++) {
        cudaEventDestroy(per[i]);
        cudaEventDestroy(pre[i]);
    }
    free(per);
    free(pre);
    cudaEventDestroy(a);
    cudaEventDestroy(b);
    cudaStreamDestroy(s);
    return t[reps / 2];
}

int main(int argc, char **argv)
{
    int count = argc > 1 ? atoi(argv[1]) : 48;
    size_t size = (size_t)(argc > 2 ? atoi(argv[2]) : 128) << 20;
    int reps = argc > 3 ? atoi(argv[3]) : 5;
    if (reps > 16) reps = 16;
    char *gpu;
    CK(cudaMalloc((void **)&gpu, 2 * size));
    void **src = calloc((size_t)count, sizeof *src);
    const char *names[] = {"cudaHostAlloc", "malloc+cudaHostRegister",
                           "memalign4K+cudaHostRegister", "malloc+Register(Portable)",
                           "memalign2M+THP+cudaHostRegister"};
    for (int kind = 0; kind < 5; kind++) {
        for (int i = 0; i < count; i++) {
            if (kind == 0) {
                CK(cudaHostAlloc(&src[i], size, cudaHostAllocDefault));
            } else {
                if (kind == 2 || kind == 4) {
                    if (posix_memalign(&src[i], kind == 4 ? 2u << 20 : 4096, size)) exit(1);
                    if (kind == 4 && madvise(src[i], size, MADV_HUGEPAGE) != 0)
                        perror("madvise(MADV_HUGEPAGE)");
                } else {
                    src[i] = malloc(size);
                }
                memset(src[i], i, size);
                CK(cudaHostRegister(
                    src[i], size, kind == 3 ? cudaHostRegisterPortable : cudaHostRegisterDefault));
            }
        }
        if (kind == 4) { /* whether the kernel gave huge pages */
            FILE *f = fopen("/proc/self/smaps_rollup", "r");
            char line[256];
            while (f && fgets(line, sizeof line, f))
                if (!strncmp(line, "AnonHugePages:", 14)) printf("  %s", line);
            if (f) fclose(f);
        }
        for (int ev = 0; ev < 4; ev++) {
            float ms = run(src, count, size, gpu, reps, ev);
            printf("%-30s events=%d addr%%4096=%4lu  %8.2f ms  %6.3f ms/copy  %5.2f GB/s\n",
                   names[kind], ev, (unsigned long)((uintptr_t)src[0] % 4096), ms, ms / count,
                   (double)size * count / (ms * 1e6));
        }
        for (int i = 0; i < count; i++) {
            if (kind == 0) {
                cudaFreeHost(src[i]);
            } else {
                cudaHostUnregister(src[i]);
                free(src[i]);
            }
        }
    }
    /* One big copy as the link's reference. */
    void *big;
    size_t bsz = size * 8;
    CK(cudaHostAlloc(&big, bsz, cudaHostAllocDefault));
    char *gb;
    CK(cudaMalloc((void **)&gb, bsz));
    cudaEvent_t a, b;
    CK(cudaEventCreate(&a));
    CK(cudaEventCreate(&b));
    float t[16];
    for (int r = -1; r < reps; r++) {
        CK(cudaEventRecord(a, 0));
        CK(cudaMemcpyAsync(gb, big, bsz, cudaMemcpyHostToDevice, 0));
        CK(cudaEventRecord(b, 0));
        CK(cudaEventSynchronize(b));
        if (r >= 0) CK(cudaEventElapsedTime(&t[r], a, b));
    }
    qsort(t, (size_t)reps, sizeof *t, cmp);
    printf("one %zu MiB copy (cudaHostAlloc): %.3f ms per %zu MiB, %.2f GB/s\n", bsz >> 20,
           t[reps / 2] * (double)size / bsz, size >> 20, (double)bsz / (t[reps / 2] * 1e6));
    return 0;
}
