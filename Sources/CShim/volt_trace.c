#if __linux__
#include "volt_trace.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_MARKS 96

static struct { const char *name; uint64_t ns; } marks[MAX_MARKS];
static atomic_int count;
static uint64_t origin;
static int enabled;

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void volt_trace_mark(const char *name) {
    int i = atomic_fetch_add_explicit(&count, 1, memory_order_relaxed);
    if (i >= MAX_MARKS) return;
    marks[i].ns = now_ns();
    marks[i].name = name;
}

__attribute__((constructor)) static void volt_trace_start(void) {
    volt_trace_mark("process start (constructor, after dynamic loading)");
    const char *exec = getenv("VOLT_TRACE_EXEC_NS");
    origin = exec ? strtoull(exec, NULL, 10) : marks[0].ns;
    const char *on = getenv("VOLT_TRACE_STARTUP");
    enabled = on && strcmp(on, "1") == 0;
}

int volt_trace_enabled(void) { return enabled; }
uint64_t volt_trace_origin_ns(void) { return origin; }

int volt_trace_dump(int fd, const char *program) {
    int n = atomic_load(&count);
    if (n > MAX_MARKS) n = MAX_MARKS;
    char line[256];
    uint64_t previous = origin;
    for (int i = 0; i < n; i++) {
        if (!marks[i].name) continue;   // taken by a thread that has not stored it yet
        uint64_t at = marks[i].ns;
        long us = (long)((int64_t)(at - origin) / 1000), delta = (long)((int64_t)(at - previous) / 1000);
        int len = snprintf(line, sizeof line, "startup %s: +%ld us (+%ld) %s\n", program, us, delta, marks[i].name);
        if (len > (int)sizeof line - 1) len = sizeof line - 1;
        if (write(fd, line, (size_t)len) < 0) return -errno;
        previous = at;
    }
    return 0;
}
#endif
