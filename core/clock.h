/* core/clock.h — the one monotonic clock every part times with (library-internal). */
#ifndef FERRY_CORE_CLOCK_H
#define FERRY_CORE_CLOCK_H

#include <stdint.h>

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t fy_now_ns(void);

/* The same in seconds. */
static inline double fy_now_s(void)
{
    return (double)fy_now_ns() * 1e-9;
}

#endif
