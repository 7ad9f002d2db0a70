// Startup trace (`volt-vmm run --trace-startup`, and workers it spawns): phase marks taken
// with CLOCK_MONOTONIC into a fixed table, no allocation, safe from any thread and after
// seccomp. The first mark is taken by a constructor before main (for a static binary that
// is right after exec; for a dynamic one, after the loader). The origin is the parent's
// CLOCK_MONOTONIC stamp in VOLT_TRACE_EXEC_NS (taken just before its execve) if set, else
// that first mark.
#pragma once
#include <stdint.h>

/// Records `name` (a string that lives for the whole process: a literal) now. Marks past
/// the table's 96 are dropped.
void volt_trace_mark(const char *name);
/// Whether VOLT_TRACE_STARTUP=1 was in the environment at start.
int volt_trace_enabled(void);
/// Writes the marks to `fd`, one line each: "startup PROGRAM: +MICROS us (+DELTA) NAME",
/// MICROS since the origin. Returns 0 or -errno.
int volt_trace_dump(int fd, const char *program);
/// The origin in CLOCK_MONOTONIC ns (see above).
uint64_t volt_trace_origin_ns(void);
