// Syscalls and libc entry points Swift's Glibc module does not expose
// (it is built without _GNU_SOURCE, and variadic functions are not importable).
// Convention: every function returns >= 0 on success or -errno; callers never read errno.
#pragma once
#include <poll.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

int volt_ioctl(int fd, unsigned long request, void *arg);
int volt_ioctl_int(int fd, unsigned long request, unsigned long arg);
int volt_memfd_create(const char *name, unsigned int flags);
int volt_eventfd(unsigned int initval, int flags);
int volt_pipe2(int fds[2], int flags);
int volt_prctl(int option, unsigned long a2, unsigned long a3, unsigned long a4, unsigned long a5);
int volt_pidfd_open(pid_t pid);
/// Signals the process behind `pidfd` (never a recycled pid). Returns 0 or -errno.
int volt_pidfd_send_signal(int pidfd, int sig);
/// poll(), retried on EINTR. Returns the number of ready fds or -errno.
int volt_poll(struct pollfd *fds, unsigned long count, int timeout_ms);
/// Blocks signal `sig` in the calling thread's mask (so only a chosen thread receives it).
int volt_block_signal(int sig);
int volt_unblock_signal(int sig);
/// Installs a no-op handler for `sig` without SA_RESTART, so a blocking syscall in a
/// thread that receives it returns EINTR (used to kick vCPUs out of KVM_RUN).
int volt_install_kick_handler(int sig);
/// pthread_kill wrapper returning -errno.
int volt_thread_kill(unsigned long thread, int sig);
unsigned long volt_thread_self(void);
/// Monotonic nanoseconds (CLOCK_MONOTONIC).
uint64_t volt_monotonic_ns(void);

#define VOLT_MFD_CLOEXEC 0x0001U
#define VOLT_MFD_ALLOW_SEALING 0x0002U
#define VOLT_EFD_CLOEXEC 02000000
#define VOLT_EFD_NONBLOCK 04000
#define VOLT_O_DIRECT 040000     /* O_DIRECT (GNU; not in Swift's Glibc) */
#define VOLT_POLLRDHUP 0x2000   /* peer closed its end (GNU; not in Swift's Glibc) */
#define VOLT_PR_SET_NAME 15
#define VOLT_PR_SET_PDEATHSIG 1
#define VOLT_PR_SET_NO_NEW_PRIVS 38

/// Blocks SIGINT, SIGTERM, SIGHUP and SIGQUIT in the calling thread (threads created
/// afterwards inherit the mask), so one thread can take them with volt_wait_termination_signal.
int volt_block_termination_signals(void);
/// Waits for one of the signals above; returns its number or -errno.
int volt_wait_termination_signal(void);
/// Waits for one of the signals above (blocked, through a signalfd) or for `fd` to become
/// readable: the signal's number, 0 for `fd` (a signal then stays pending), or -errno.
int volt_wait_termination_signal_or_fd(int fd);
/// Names a thread (visible in /proc/PID/task/TID/comm); name is cut to 15 bytes.
int volt_thread_setname(unsigned long thread, const char *name);
/// Until a signal thread exists (e.g. while waiting for the front-end to connect):
/// unblocks the termination signals above and makes each one end the process with
/// _exit(0) straight from a handler (nothing to save before the first message).
int volt_exit_on_termination_signals(void);
/// getrandom(2) with flags 0 (the kernel CSPRNG; blocks only until it is seeded):
/// bytes written (possibly fewer than `len`) or -errno.
long volt_getrandom(void *buf, unsigned long len);
