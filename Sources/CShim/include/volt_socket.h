// AF_UNIX stream sockets with SCM_RIGHTS fd passing (vhost-user transport).
// Swift cannot import the CMSG_* macros, and sockaddr_un handling is clumsier there.
// Convention: every function returns >= 0 on success or -errno; callers never read errno.
#pragma once
#include <stddef.h>

/// Most fds accepted in one received message (vhost-user: at most 8 per message).
#define VOLT_SOCKET_MAX_FDS 8
/// Returned by volt_recvmsg_fds when the peer attached more fds than fit (MSG_CTRUNC).
#define VOLT_ECTRUNC 1000

/// socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC). Writes both fds to `fds`.
int volt_socketpair_stream(int fds[2]);
/// socket + bind + listen on `path` (SOCK_CLOEXEC). -ENAMETOOLONG if the path does not fit.
int volt_unix_listen(const char *path, int backlog);
/// socket + connect to `path` (SOCK_CLOEXEC); retries EINTR.
int volt_unix_connect(const char *path);
/// accept4(SOCK_CLOEXEC); retries EINTR.
int volt_unix_accept(int listen_fd);
/// One accept4(SOCK_NONBLOCK | SOCK_CLOEXEC) (the API server's poll loop; Swift cannot see
/// accept4, and accept + fcntl would leak the fd into a worker spawned in between).
/// Does not retry EINTR.
int volt_accept_nonblocking(int listen_fd);
/// Removes `path` if it is a socket. 0 if removed or absent, -EEXIST if it is not a socket.
int volt_remove_stale_socket(const char *path);
/// 1 if `fd` is a socket, 0 if it is something else.
int volt_fd_is_socket(int fd);
/// Sets FD_CLOEXEC on `fd`.
int volt_set_cloexec(int fd);
/// One sendmsg(MSG_NOSIGNAL) of `len` bytes with `nfds` fds as SCM_RIGHTS (nfds may be 0,
/// at most 253). Returns the number of bytes sent (may be short). Does not retry EINTR.
int volt_sendmsg_fds(int sock, const void *buf, size_t len, const int *fds, int nfds);
/// One recvmsg(MSG_CMSG_CLOEXEC) of at most `len` bytes. Received fds are stored in `fds`
/// (room for VOLT_SOCKET_MAX_FDS) and counted in `*nfds`. Returns bytes read (0 = EOF).
/// If control data was truncated (too many fds) every received fd is closed, *nfds = 0,
/// and -VOLT_ECTRUNC is returned. Does not retry EINTR.
int volt_recvmsg_fds(int sock, void *buf, size_t len, int *fds, int *nfds);
/// socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC) + one connect to `path`
/// (vsock: a guest connecting to the host). A Unix stream connect completes at once or
/// fails (-EAGAIN: the listener's backlog is full); retries EINTR.
int volt_unix_connect_nonblocking(const char *path);
/// shutdown(fd, SHUT_WR): the peer reads end-of-file.
int volt_shutdown_write(int fd);
