// The launcher: a small process volt-vmm forks before it locks itself down (Landlock, seccomp
// without execve). It is the only part of a running VM that can start programs or remove
// files, and only from tables fixed when it was forked: command i (an executable with its
// whole argv) and file j. A compromised VMM can ask it to restart its own workers with fds of
// its choosing, and to remove its own networkd units — nothing else.
//
// Processes it starts are children of volt-vmm, not of the launcher (clone with CLONE_PARENT),
// so volt-vmm waits for them and reads their exit status as before.
// Convention: every function returns >= 0 on success or -errno; callers never read errno.
#pragma once
#include <stddef.h>
#include <sys/types.h>

struct volt_launch_command {
    const char *path;      // absolute executable path
    char *const *argv;     // NULL-terminated, argv[0] included
    int fd_count;          // exactly this many fds per request; they become fds 3, 4, ...
};

/// Forks the launcher. The tables are read by the child from its copy of memory at fork time
/// (the caller may free them once this returns). The child makes only async-signal-safe calls,
/// so other threads may run. Returns volt-vmm's end of the request socket (close-on-exec); the
/// launcher's pid goes to *pid. The launcher exits when that socket closes — volt-vmm ended,
/// however — after removing the table files no request removed and, if it removed any,
/// starting command `cleanup` (-1: none), e.g. `networkctl reload` after networkd units.
int volt_launcher_start(const struct volt_launch_command *commands, size_t command_count,
                        const char *const *files, size_t file_count, int cleanup, pid_t *pid);

/// Starts command `index` with `fds` as its fds 3, 4, ... (every other fd above 2 closed, signal
/// mask empty, dispositions default, environment of volt-vmm at fork time). At most one process
/// per command runs at a time (-EBUSY while the previous one lives; at most 64 commands, 32 fds).
/// Returns the new child's pid (a child of the caller: reap it), or -errno; a failed exec is reported as
/// -errno after the launcher has let the failed child exit, and *failed_pid names that child
/// (reap it too), else is -1.
int volt_launcher_run(int socket, unsigned index, const int *fds, size_t count, pid_t *failed_pid);

/// Removes file `index` of the table (unlink). Returns 0 or -errno.
int volt_launcher_unlink(int socket, unsigned index);

/// The system call number in the kernel's newest seccomp audit record (type=1326) for `pid`,
/// read from /dev/kmsg by the launcher (volt-vmm cannot open it once locked down). Only for
/// pids the launcher started (-EPERM otherwise). Returns the number, -ENOENT when there is no
/// such record, or -errno.
int volt_launcher_seccomp_syscall(int socket, pid_t pid);

/// The same lookup done by the caller itself (before the lock-down).
int volt_seccomp_syscall_of(pid_t pid);
