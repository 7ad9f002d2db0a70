// exec-stamp PROGRAM [ARG ...]: takes CLOCK_MONOTONIC, puts it in VOLT_TRACE_EXEC_NS (the
// origin `volt-vmm run --trace-startup` measures from), prints "exec-stamp NS" on stderr
// (bench/boot.py reads it to time exec -> first guest output), then execv's PROGRAM.
// The stamp is taken just before execve, so what follows it is the kernel's exec, the
// dynamic loader, and the program. `make -C bench`.
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 2) {
        fputs("usage: exec-stamp PROGRAM [ARG ...]\n", stderr);
        return 2;
    }
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    char stamp[32];
    snprintf(stamp, sizeof stamp, "%llu", (unsigned long long)ts.tv_sec * 1000000000ull + (unsigned long long)ts.tv_nsec);
    setenv("VOLT_TRACE_EXEC_NS", stamp, 1);
    dprintf(2, "exec-stamp %s\n", stamp);
    execv(argv[1], argv + 1);
    perror(argv[1]);
    return 127;
}
