#ifdef __linux__
#define _GNU_SOURCE
#include "volt_socket.h"
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static int ret(long r) { return r < 0 ? -errno : (int)r; }

static int fill_addr(struct sockaddr_un *addr, const char *path) {
    size_t n = strlen(path);
    if (n == 0) return -EINVAL;
    if (n >= sizeof(addr->sun_path)) return -ENAMETOOLONG;
    memset(addr, 0, sizeof(*addr));
    addr->sun_family = AF_UNIX;
    memcpy(addr->sun_path, path, n + 1);
    return 0;
}

int volt_socketpair_stream(int fds[2]) {
    return ret(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds));
}

static int bind_and_listen(const char *path, int backlog) {
    struct sockaddr_un addr;
    int r = fill_addr(&addr, path);
    if (r < 0) return r;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 || listen(fd, backlog) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

// Listens on a temporary name next to `path`, then renames it into place: the socket
// file appears only once it accepts connections, so a front-end that waits for the file
// and then connects never gets ECONNREFUSED. Direct bind if the longer name does not fit.
int volt_unix_listen(const char *path, int backlog) {
    char tmp[sizeof(((struct sockaddr_un *)0)->sun_path)];
    int n = snprintf(tmp, sizeof(tmp), "%s.%d.tmp", path, (int)getpid());
    if (n < 0 || (size_t)n >= sizeof(tmp)) return bind_and_listen(path, backlog);
    unlink(tmp);   // left by an earlier process with our pid: nobody listens on it
    int fd = bind_and_listen(tmp, backlog);
    if (fd < 0) return fd;
    if (rename(tmp, path) < 0) {
        int e = errno;
        unlink(tmp);
        close(fd);
        return -e;
    }
    return fd;
}

int volt_unix_connect(const char *path) {
    struct sockaddr_un addr;
    int r = fill_addr(&addr, path);
    if (r < 0) return r;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    // A connect interrupted by a signal keeps going in the background; retrying it may
    // fail with EALREADY/EISCONN, which is fine to surface as an error here.
    while (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
        if (errno == EINTR) continue;
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

int volt_unix_accept(int listen_fd) {
    int fd;
    do { fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC); } while (fd < 0 && errno == EINTR);
    return ret(fd);
}

int volt_accept_nonblocking(int listen_fd) {
    return ret(accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC));
}

int volt_remove_stale_socket(const char *path) {
    struct stat st;
    if (lstat(path, &st) < 0) return errno == ENOENT ? 0 : -errno;
    if (!S_ISSOCK(st.st_mode)) return -EEXIST;
    return ret(unlink(path));
}

int volt_fd_is_socket(int fd) {
    struct stat st;
    if (fstat(fd, &st) < 0) return -errno;
    return S_ISSOCK(st.st_mode) ? 1 : 0;
}

int volt_set_cloexec(int fd) {
    int flags = fcntl(fd, F_GETFD);
    if (flags < 0) return -errno;
    return ret(fcntl(fd, F_SETFD, flags | FD_CLOEXEC));
}

int volt_sendmsg_fds(int sock, const void *buf, size_t len, const int *fds, int nfds) {
    if (nfds < 0 || nfds > 253) return -EINVAL;
    struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
    struct msghdr msg;
    memset(&msg, 0, sizeof(msg));
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    union { char buf[CMSG_SPACE(sizeof(int) * 253)]; struct cmsghdr align; } control;
    if (nfds > 0) {
        size_t bytes = sizeof(int) * (size_t)nfds;
        memset(&control, 0, sizeof(control));
        msg.msg_control = control.buf;
        msg.msg_controllen = CMSG_SPACE(bytes);
        struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(bytes);
        memcpy(CMSG_DATA(c), fds, bytes);
    }
    return ret(sendmsg(sock, &msg, MSG_NOSIGNAL));
}

static void close_all(int *fds, int n) {
    for (int i = 0; i < n; i++) close(fds[i]);
}

int volt_recvmsg_fds(int sock, void *buf, size_t len, int *fds, int *nfds) {
    *nfds = 0;
    struct iovec iov = { .iov_base = buf, .iov_len = len };
    union { char buf[CMSG_SPACE(sizeof(int) * VOLT_SOCKET_MAX_FDS)]; struct cmsghdr align; } control;
    struct msghdr msg;
    memset(&msg, 0, sizeof(msg));
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.buf;
    msg.msg_controllen = sizeof(control.buf);
    ssize_t n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
    if (n < 0) return -errno;
    int count = 0, overflow = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c != NULL; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
        int k = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
        int *data = (int *)CMSG_DATA(c);
        for (int i = 0; i < k; i++) {
            int fd;
            memcpy(&fd, data + i, sizeof(int));
            if (count < VOLT_SOCKET_MAX_FDS) fds[count++] = fd;
            else { close(fd); overflow = 1; }
        }
    }
    if (overflow || (msg.msg_flags & MSG_CTRUNC)) {
        close_all(fds, count);
        return -VOLT_ECTRUNC;
    }
    *nfds = count;
    return (int)n;
}
int volt_unix_connect_nonblocking(const char *path) {
    struct sockaddr_un addr;
    int r = fill_addr(&addr, path);
    if (r < 0) return r;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    while (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
        if (errno == EINTR) continue;
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

int volt_shutdown_write(int fd) { return ret(shutdown(fd, SHUT_WR)); }
#endif
