#ifdef __linux__
#define _GNU_SOURCE
#include "volt_block.h"
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

static int ret(long r) { return r < 0 ? -errno : (int)r; }

int volt_open_image(const char *path, int flags, int direct) {
    int f = flags | O_CLOEXEC | (direct ? O_DIRECT : 0);
    int r;
    do { r = open(path, f, 0); } while (r < 0 && errno == EINTR);
    return ret(r);
}

int volt_reopen_fd(int fd, int flags, int direct) {
    char path[64];
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    return volt_open_image(path, flags, direct);
}

int volt_set_direct(int fd, int direct) {
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0) return -errno;
    fl = direct ? (fl | O_DIRECT) : (fl & ~O_DIRECT);
    return ret(fcntl(fd, F_SETFL, fl));
}

int volt_is_direct(int fd) {
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0) return -errno;
    return (fl & O_DIRECT) ? 1 : 0;
}

int volt_fallocate(int fd, int mode, uint64_t offset, uint64_t length) {
    int r;
    do { r = fallocate(fd, mode, (off_t)offset, (off_t)length); } while (r < 0 && errno == EINTR);
    return ret(r);
}
#endif
