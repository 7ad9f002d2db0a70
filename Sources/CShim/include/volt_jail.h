// Namespaces, an empty root and resource limits for the sandboxed workers (unshare,
// mount, pivot_root are _GNU_SOURCE or syscall()-only, so Swift cannot call them).
// Convention: every function returns >= 0 on success or -errno; callers never read errno.
#pragma once
#include <stdint.h>

#define VOLT_CLONE_NEWNS   0x00020000
#define VOLT_CLONE_NEWUTS  0x04000000
#define VOLT_CLONE_NEWIPC  0x08000000
#define VOLT_CLONE_NEWUSER 0x10000000
#define VOLT_CLONE_NEWNET  0x40000000
#define VOLT_CLONE_THREAD  0x00010000

/// unshare(flags).
int volt_unshare(int flags);

/// After unshare(CLONE_NEWUSER): maps `outer_uid`/`outer_gid` to the same ids inside
/// (writes /proc/self/uid_map, setgroups "deny", gid_map). Call before the root goes away.
int volt_map_self(uint32_t outer_uid, uint32_t outer_gid);

/// In a new mount namespace: makes every mount private (nothing propagates back to the
/// host), mounts an empty read-only tmpfs on `mount_point` (nosuid, nodev, noexec),
/// pivots the root into it and detaches the old root, then chdir("/"). If pivot_root is
/// refused (e.g. the root is an initramfs), falls back to chroot into the tmpfs and
/// returns 1 instead of 0.
int volt_enter_empty_root(const char *mount_point);

/// Like volt_enter_empty_root, but the new root is a read-only bind mount (nosuid,
/// nodev, noexec, not recursive) of the directory `dir`: the jail sees that one
/// directory's entries and nothing else (vsock: the Unix sockets `<uds_path>_P` it
/// connects to). 0 with pivot_root, 1 with the chroot fallback.
int volt_enter_directory_root(const char *dir);

/// setrlimit(resource, {cur, max}), never above the current hard limit; UINT64_MAX is RLIM_INFINITY.
int volt_set_rlimit(int resource, uint64_t cur, uint64_t max);
/// Number of threads of the calling process (from /proc/self/task), or -errno.
int volt_thread_count(void);

#define VOLT_RLIMIT_FSIZE 1
#define VOLT_RLIMIT_CORE 4
#define VOLT_RLIMIT_NPROC 6
#define VOLT_RLIMIT_NOFILE 7
