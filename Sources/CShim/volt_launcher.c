#ifdef __linux__
#define _GNU_SOURCE
#include "volt_launcher.h"
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

extern char **environ;

// MAX_FDS: a net worker takes its socket, up to 16 TAP queues and its metrics page.
enum { LAUNCH_RUN = 1, LAUNCH_UNLINK = 2, LAUNCH_SECCOMP_SYSCALL = 3, MAX_FDS = 32,
       MAX_COMMANDS = 64, MAX_STARTED = 64, MAX_FILES = 64 };

struct launch_request { uint32_t kind; uint32_t index; };
struct launch_reply { int32_t result; int32_t failed_pid; };

static int send_request(int sock, const struct launch_request *req, const int *fds, size_t count) {
    if (count > MAX_FDS) return -EINVAL;
    struct iovec iov = { (void *)req, sizeof *req };
    union { char buf[CMSG_SPACE(sizeof(int) * MAX_FDS)]; struct cmsghdr align; } control;
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
    if (count > 0) {
        memset(&control, 0, sizeof control);
        msg.msg_control = control.buf;
        msg.msg_controllen = CMSG_SPACE(sizeof(int) * count);
        struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * count);
        memcpy(CMSG_DATA(c), fds, sizeof(int) * count);
    }
    ssize_t n;
    do { n = sendmsg(sock, &msg, MSG_NOSIGNAL); } while (n < 0 && errno == EINTR);
    if (n < 0) return -errno;
    return n == (ssize_t)sizeof *req ? 0 : -EPROTO;
}

static int read_reply(int sock, struct launch_reply *reply) {
    ssize_t n;
    do { n = recv(sock, reply, sizeof *reply, 0); } while (n < 0 && errno == EINTR);
    if (n < 0) return -errno;
    return n == (ssize_t)sizeof *reply ? 0 : -EPIPE;   // short or EOF: the launcher is gone
}

int volt_launcher_run(int sock, unsigned index, const int *fds, size_t count, pid_t *failed_pid) {
    *failed_pid = -1;
    struct launch_request req = { LAUNCH_RUN, index };
    struct launch_reply reply;
    int r = send_request(sock, &req, fds, count);
    if (r < 0 || (r = read_reply(sock, &reply)) < 0) return r;
    *failed_pid = reply.failed_pid;
    return reply.result;
}

int volt_launcher_unlink(int sock, unsigned index) {
    struct launch_request req = { LAUNCH_UNLINK, index };
    struct launch_reply reply;
    int r = send_request(sock, &req, NULL, 0);
    if (r < 0 || (r = read_reply(sock, &reply)) < 0) return r;
    return reply.result;
}

int volt_launcher_seccomp_syscall(int sock, pid_t pid) {
    if (pid <= 0) return -EINVAL;
    struct launch_request req = { LAUNCH_SECCOMP_SYSCALL, (uint32_t)pid };
    struct launch_reply reply;
    int r = send_request(sock, &req, NULL, 0);
    if (r < 0 || (r = read_reply(sock, &reply)) < 0) return r;
    return reply.result;
}

// " pid=N " without snprintf (the launcher may be a fork of a multi-threaded process).
static void pid_needle(char out[32], pid_t pid) {
    char digits[16];
    int n = 0;
    unsigned v = (unsigned)pid;
    do { digits[n++] = (char)('0' + v % 10); v /= 10; } while (v && n < 15);
    int k = 0;
    for (const char *p = " pid="; *p; p++) out[k++] = *p;
    while (n > 0) out[k++] = digits[--n];
    out[k++] = ' ';
    out[k] = 0;
}

int volt_seccomp_syscall_of(pid_t pid) {
    int fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return -errno;
    char needle[32];
    pid_needle(needle, pid);
    char record[8192];
    int found = -ENOENT;
    for (;;) {                                   // one record per read, oldest first
        ssize_t n = read(fd, record, sizeof record - 1);
        if (n < 0 && errno == EPIPE) continue;   // a record was overwritten meanwhile
        if (n <= 0) break;                       // EAGAIN: the end of the buffer
        record[n] = 0;
        if (!strstr(record, "type=1326") || !strstr(record, needle)) continue;
        const char *nr = strstr(record, " syscall=");
        if (!nr) continue;
        int value = 0;
        for (nr += 9; *nr >= '0' && *nr <= '9' && value < 100000; nr++) value = value * 10 + (*nr - '0');
        found = value;                           // keep the newest
    }
    close(fd);
    return found;
}

// ---- the launcher process ----

// In the new child: fds become 3, 4, ...; then exec. Only async-signal-safe calls.
static void become(const struct volt_launch_command *cmd, const int *fds, int count, int error_pipe) {
    int above = 3 + count + 1;
    if (error_pipe < above) {
        int moved = fcntl(error_pipe, F_DUPFD_CLOEXEC, above);
        if (moved < 0) {
            int e = errno;
            ssize_t ignored = write(error_pipe, &e, sizeof e);
            (void)ignored;
            _exit(127);
        }
        error_pipe = moved;
    }
    int copies[MAX_FDS];
    for (int i = 0; i < count; i++) {
        // Above every target and the error pipe, so no dup2 below overwrites a source.
        copies[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, error_pipe + 1);
        if (copies[i] < 0) goto fail;
    }
    for (int i = 0; i < count; i++) {
        if (dup2(copies[i], 3 + i) < 0) goto fail;
    }
    for (int fd = 3 + count; fd < error_pipe; fd++) close(fd);
    // Everything above the error pipe (copies, the launcher's socket) is close-on-exec or goes now.
    if (syscall(SYS_close_range, (unsigned)error_pipe + 1, ~0U, 0) < 0) goto fail;
    sigset_t none;
    sigemptyset(&none);
    for (int s = 1; s < 65; s++) signal(s, SIG_DFL);   // errors for SIGKILL/SIGSTOP/32/33 are fine
    sigprocmask(SIG_SETMASK, &none, NULL);
    execve(cmd->path, cmd->argv, environ);
fail:;
    int e = errno;
    ssize_t ignored = write(error_pipe, &e, sizeof e);
    (void)ignored;
    _exit(127);
}

// What the launcher remembers of the processes it started: per command the pidfd of the
// newest one (a command runs at most once at a time), and the pids (for the kmsg lookup).
static int live[MAX_COMMANDS];
// Files of the table not removed yet through a request: removed when volt-vmm goes away
// without removing them (SIGKILL, crash), then the cleanup command runs.
static unsigned char file_removed[MAX_FILES];
static pid_t started[MAX_STARTED];
static unsigned started_count;

static int still_running(int pidfd) {
    struct pollfd p = { pidfd, POLLIN, 0 };
    return pidfd >= 0 && poll(&p, 1, 0) == 0;   // a pidfd turns readable when its process exits
}

static struct launch_reply run_command(unsigned index, const struct volt_launch_command *cmd, const int *fds, int count) {
    struct launch_reply reply = { 0, -1 };
    // One process per command at a time: a compromised volt-vmm cannot multiply workers.
    if (still_running(live[index])) { reply.result = -EBUSY; return reply; }
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0) { reply.result = -errno; return reply; }
    // A fork whose parent is volt-vmm (CLONE_PARENT): volt-vmm reaps it and sees how it ended.
    // Its exit signal is the launcher's own (SIGCHLD, from fork), whatever the flags say.
    int pidfd = -1;
    long pid = syscall(SYS_clone, CLONE_PARENT | CLONE_PIDFD | SIGCHLD, 0, &pidfd, NULL, 0);
    if (pid == 0) { close(p[0]); become(cmd, fds, count, p[1]); }
    int e = errno;
    close(p[1]);
    if (pid < 0) { close(p[0]); reply.result = -e; return reply; }
    if (live[index] >= 0) close(live[index]);
    live[index] = pidfd;
    started[started_count++ % MAX_STARTED] = (pid_t)pid;
    int child_errno = 0;
    ssize_t n;
    do { n = read(p[0], &child_errno, sizeof child_errno); } while (n < 0 && errno == EINTR);
    close(p[0]);
    if (n == (ssize_t)sizeof child_errno) {       // exec failed: the child exits 127
        reply.result = -(child_errno ? child_errno : EIO);
        reply.failed_pid = (int32_t)pid;
    } else {
        reply.result = (int32_t)pid;              // EOF: the pipe closed on exec
    }
    return reply;
}

static int was_started(pid_t pid) {
    unsigned n = started_count < MAX_STARTED ? started_count : MAX_STARTED;
    for (unsigned i = 0; i < n; i++) if (started[i] == pid) return 1;
    return 0;
}

// volt-vmm is gone (its socket closed): remove what it left behind, and if anything was
// removed, start the cleanup command (not waited for; init reaps it).
static void clean_up_after(const struct volt_launch_command *commands, size_t command_count,
                           const char *const *files, size_t file_count, int cleanup) {
    int removed = 0;
    for (size_t i = 0; i < file_count; i++) {
        if (!file_removed[i] && unlink(files[i]) == 0) removed = 1;
    }
    if (!removed || cleanup < 0 || (size_t)cleanup >= command_count) return;
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0) return;
    pid_t pid = fork();
    if (pid == 0) { close(p[0]); become(&commands[cleanup], NULL, 0, p[1]); }
    close(p[0]);
    close(p[1]);
}

static void serve(int sock, const struct volt_launch_command *commands, size_t command_count,
                  const char *const *files, size_t file_count, int cleanup) {
    for (size_t i = 0; i < MAX_COMMANDS; i++) live[i] = -1;
    for (;;) {
        struct launch_request req;
        struct iovec iov = { &req, sizeof req };
        union { char buf[CMSG_SPACE(sizeof(int) * MAX_FDS)]; struct cmsghdr align; } control;
        struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf,
                              .msg_controllen = sizeof control.buf };
        ssize_t n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {                                // volt-vmm closed the socket or is gone
            clean_up_after(commands, command_count, files, file_count, cleanup);
            _exit(0);
        }
        int fds[MAX_FDS];
        int count = 0;
        int malformed = n != (ssize_t)sizeof req || (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC));
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
            if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) { malformed = 1; continue; }
            int k = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
            for (int i = 0; i < k; i++) {
                int fd;
                memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
                if (count < MAX_FDS) fds[count++] = fd; else { close(fd); malformed = 1; }
            }
        }
        struct launch_reply reply = { -EINVAL, -1 };
        if (!malformed && req.kind == LAUNCH_RUN && req.index < command_count
            && commands[req.index].fd_count == count) {
            reply = run_command(req.index, &commands[req.index], fds, count);
        } else if (!malformed && req.kind == LAUNCH_UNLINK && req.index < file_count && count == 0) {
            reply.result = unlink(files[req.index]) == 0 ? 0 : -errno;
            file_removed[req.index] = 1;
        } else if (!malformed && req.kind == LAUNCH_SECCOMP_SYSCALL && count == 0 && req.index > 0
                   && req.index <= INT32_MAX) {
            // Only about processes the launcher started: the kernel log stays closed otherwise.
            reply.result = was_started((pid_t)req.index) ? volt_seccomp_syscall_of((pid_t)req.index) : -EPERM;
        }
        for (int i = 0; i < count; i++) close(fds[i]);
        ssize_t sent;
        do { sent = send(sock, &reply, sizeof reply, MSG_NOSIGNAL); } while (sent < 0 && errno == EINTR);
        if (sent < 0) {
            clean_up_after(commands, command_count, files, file_count, cleanup);
            _exit(0);
        }
    }
}

int volt_launcher_start(const struct volt_launch_command *commands, size_t command_count,
                        const char *const *files, size_t file_count, int cleanup, pid_t *pid_out) {
    if (command_count > MAX_COMMANDS || file_count > MAX_FILES) return -EINVAL;
    for (size_t i = 0; i < command_count; i++) {
        if (commands[i].fd_count < 0 || commands[i].fd_count > MAX_FDS) return -EINVAL;
    }
    int sv[2];
    // SOCK_SEQPACKET: one request per message, so a request and its fds arrive together.
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) return -errno;
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) { int e = errno; close(sv[0]); close(sv[1]); return -e; }
    if (pid > 0) { close(sv[1]); *pid_out = pid; return sv[0]; }

    // The launcher. Nothing of volt-vmm's but stdio and its socket stays open. It needs no
    // death signal: volt-vmm's end of the socket closes with it, however it ends.
    if (getppid() != parent) _exit(0);
    prctl(PR_SET_NAME, "volt-launcher");
    int sock = sv[1];
    for (int fd = 3; fd < sock; fd++) close(fd);
    syscall(SYS_close_range, (unsigned)sock + 1, ~0U, 0);
    // Termination signals are volt-vmm's to handle (Ctrl-C reaches the whole process group);
    // the launcher still serves the teardown and leaves when volt-vmm does.
    signal(SIGINT, SIG_IGN);
    signal(SIGTERM, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    signal(SIGQUIT, SIG_IGN);
    signal(SIGPIPE, SIG_IGN);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    serve(sock, commands, command_count, files, file_count, cleanup);
    _exit(0);
}
#endif
