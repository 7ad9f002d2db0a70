// The floor under `volt-bench api`'s keep-alive rows: what a GET / round trip over a Unix
// socket costs on this host with no HTTP layer at all. `server` answers every read with
// the bytes volt-vmm sends for GET / (poll, read, send: the system calls volt-vmm's API
// thread makes per request); `client` times N round trips on one connection, against it
// or against a volt-vmm's API socket, and prints p50/p99/max. Not part of the build:
//
//     cc -O2 -o /tmp/api-floor bench/api-floor.c
//     /tmp/api-floor server /tmp/floor.sock & /tmp/api-floor client /tmp/floor.sock 10000
//     volt-vmm run --api-sock /tmp/v.sock & /tmp/api-floor client /tmp/v.sock 10000
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static const char request[] = "GET / HTTP/1.1\r\nHost: localhost\r\nAccept: application/json\r\n\r\n";
static const char body[] = "{\"app_name\":\"Firecracker\",\"id\":\"8b8eb9c9\",\"state\":\"Not started\",\"vmm_version\":\"1.10.0\"}";

static long long now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000000LL + t.tv_nsec;
}

static int ascending(const void *a, const void *b) {
    long long x = *(const long long *)a, y = *(const long long *)b;
    return x < y ? -1 : x > y;
}

static int serve(int fd) {
    char answer[512], buffer[65536];
    int length = snprintf(answer, sizeof answer,
                          "HTTP/1.1 200 OK\r\nServer: Firecracker API\r\nConnection: keep-alive\r\n"
                          "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s", strlen(body), body);
    int c = accept(fd, NULL, NULL);
    if (c < 0) { perror("accept"); return 1; }
    for (;;) {
        struct pollfd p = {.fd = c, .events = POLLIN};
        if (poll(&p, 1, 30000) <= 0) return 1;
        if (read(c, buffer, sizeof buffer) <= 0) return 0;   // the client is done
        if (send(c, answer, (size_t)length, MSG_NOSIGNAL) != length) return 1;
    }
}

// One answer ends with the JSON body's closing brace (GET / has a body, volt-vmm's too).
static int measure(int fd, int n) {
    char buffer[65536];
    long long *times = malloc(sizeof *times * (size_t)n);
    if (!times) return 1;
    for (int i = -100; i < n; i++) {   // 100 uncounted first
        long long t0 = now_ns();
        if (send(fd, request, sizeof request - 1, MSG_NOSIGNAL) != (ssize_t)(sizeof request - 1)) return 1;
        size_t have = 0;
        do {
            ssize_t r = read(fd, buffer + have, sizeof buffer - have);
            if (r <= 0) { fprintf(stderr, "the server closed the connection\n"); return 1; }
            have += (size_t)r;
        } while (buffer[have - 1] != '}');
        if (i >= 0) times[i] = now_ns() - t0;
    }
    qsort(times, (size_t)n, sizeof *times, ascending);
    printf("GET / on one connection, %d round trips: p50 %.1f µs, p99 %.1f µs, max %.1f µs\n", n,
           times[n / 2] / 1e3, times[(n * 99 + 99) / 100 - 1] / 1e3, times[n - 1] / 1e3);
    free(times);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 3 || (strcmp(argv[1], "server") && strcmp(argv[1], "client")) ||
        strlen(argv[2]) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
        fprintf(stderr, "usage: %s server SOCKET | client SOCKET [N]\n", argv[0]);
        return 2;
    }
    struct sockaddr_un address = {.sun_family = AF_UNIX};
    strcpy(address.sun_path, argv[2]);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) { perror("socket"); return 1; }
    if (!strcmp(argv[1], "server")) {
        unlink(argv[2]);
        if (bind(fd, (struct sockaddr *)&address, sizeof address) < 0 || listen(fd, 1) < 0) { perror(argv[2]); return 1; }
        int r = serve(fd);
        unlink(argv[2]);
        return r;
    }
    if (connect(fd, (struct sockaddr *)&address, sizeof address) < 0) { perror(argv[2]); return 1; }
    int n = argc > 3 ? atoi(argv[3]) : 10000;
    return measure(fd, n > 0 ? n : 10000);
}
