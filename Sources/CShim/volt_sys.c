#ifdef __linux__
#define _GNU_SOURCE
#include "volt_sys.h"
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static int ret(long r) { return r < 0 ? -errno : (int)r; }

int volt_ioctl(int fd, unsigned long request, void *arg) { return ret(ioctl(fd, request, arg)); }
int volt_ioctl_int(int fd, unsigned long request, unsigned long arg) { return ret(ioctl(fd, request, arg)); }
int volt_memfd_create(const char *name, unsigned int flags) { return ret(memfd_create(name, flags)); }
int volt_eventfd(unsigned int initval, int flags) { return ret(eventfd(initval, flags)); }
int volt_pipe2(int fds[2], int flags) { return ret(pipe2(fds, flags)); }
long volt_getrandom(void *buf, unsigned long len) {
    ssize_t n = getrandom(buf, len, 0);
    return n < 0 ? -errno : (long)n;
}
int volt_prctl(int option, unsigned long a2, unsigned long a3, unsigned long a4, unsigned long a5) {
    return ret(prctl(option, a2, a3, a4, a5));
}
int volt_pidfd_open(pid_t pid) { return ret(syscall(SYS_pidfd_open, pid, 0)); }
int volt_pidfd_send_signal(int pidfd, int sig) { return ret(syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0)); }
int volt_poll(struct pollfd *fds, unsigned long count, int timeout_ms) {
    int r;
    do { r = poll(fds, (nfds_t)count, timeout_ms); } while (r < 0 && errno == EINTR);
    return ret(r);
}

int volt_block_signal(int sig) {
    sigset_t s; sigemptyset(&s); sigaddset(&s, sig);
    return -pthread_sigmask(SIG_BLOCK, &s, NULL);
}
int volt_unblock_signal(int sig) {
    sigset_t s; sigemptyset(&s); sigaddset(&s, sig);
    return -pthread_sigmask(SIG_UNBLOCK, &s, NULL);
}
static void kick_handler(int sig) { (void)sig; }
int volt_install_kick_handler(int sig) {
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = kick_handler;   // no SA_RESTART: KVM_RUN returns EINTR
    sigemptyset(&sa.sa_mask);
    return ret(sigaction(sig, &sa, NULL));
}
int volt_thread_kill(unsigned long thread, int sig) { return -pthread_kill((pthread_t)thread, sig); }
int volt_thread_setname(unsigned long thread, const char *name) {
    char buf[16];
    strncpy(buf, name, sizeof(buf) - 1);
    buf[sizeof(buf) - 1] = 0;
    return -pthread_setname_np((pthread_t)thread, buf);
}
unsigned long volt_thread_self(void) { return (unsigned long)pthread_self(); }

static uint64_t clock_ns(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}
uint64_t volt_monotonic_ns(void) { return clock_ns(CLOCK_MONOTONIC); }

static void termination_set(sigset_t *s) {
    sigemptyset(s);
    sigaddset(s, SIGINT);
    sigaddset(s, SIGTERM);
    sigaddset(s, SIGHUP);
    sigaddset(s, SIGQUIT);
}
int volt_block_termination_signals(void) {
    sigset_t s; termination_set(&s);
    return -pthread_sigmask(SIG_BLOCK, &s, NULL);
}
int volt_wait_termination_signal(void) {
    sigset_t s; termination_set(&s);
    int sig = 0;
    int r = sigwait(&s, &sig);
    return r ? -r : sig;
}
int volt_wait_termination_signal_or_fd(int fd) {
    sigset_t s; termination_set(&s);
    int sfd = signalfd(-1, &s, SFD_CLOEXEC);
    if (sfd < 0) return -errno;
    struct pollfd p[2] = { { .fd = fd, .events = POLLIN }, { .fd = sfd, .events = POLLIN } };
    int result = 0;
    for (;;) {
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR) continue;
            result = -errno;
            break;
        }
        if (p[0].revents) break;   /* fd first: a signal arriving now stays pending */
        struct signalfd_siginfo si;
        if (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
            result = (int)si.ssi_signo;
            break;
        }
    }
    close(sfd);
    return result;
}
static void exit_handler(int sig) { (void)sig; _exit(0); }
int volt_exit_on_termination_signals(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = exit_handler;
    sigfillset(&sa.sa_mask);
    sigset_t s; termination_set(&s);
    for (int sig = 1; sig < NSIG; sig++) {
        if (sigismember(&s, sig) == 1 && sigaction(sig, &sa, NULL) < 0) return -errno;
    }
    return -pthread_sigmask(SIG_UNBLOCK, &s, NULL);
}
#endif
