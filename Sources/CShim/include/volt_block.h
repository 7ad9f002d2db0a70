// Disk-image I/O for the block worker: what Swift's Glibc module does not expose
// (fallocate and O_DIRECT need _GNU_SOURCE; the FALLOC_FL_* bits live in <linux/falloc.h>).
// Convention: every function returns >= 0 on success or -errno; callers never read errno.
#pragma once
#include <stdint.h>

/// open(path, flags | O_CLOEXEC [| O_DIRECT if direct], 0).
int volt_open_image(const char *path, int flags, int direct);
/// Reopens an inherited fd as a new open file description (via /proc/self/fd/N), so its
/// O_DIRECT status flag can differ from the original's. Must run before any sandbox.
int volt_reopen_fd(int fd, int flags, int direct);
/// Sets or clears O_DIRECT on `fd` (fcntl F_SETFL).
int volt_set_direct(int fd, int direct);
/// 1 if O_DIRECT is set on `fd`, 0 if not.
int volt_is_direct(int fd);
/// fallocate(fd, mode, offset, length); retries EINTR.
int volt_fallocate(int fd, int mode, uint64_t offset, uint64_t length);

#define VOLT_FALLOC_FL_KEEP_SIZE 0x01
#define VOLT_FALLOC_FL_PUNCH_HOLE 0x02
#define VOLT_FALLOC_FL_ZERO_RANGE 0x10
