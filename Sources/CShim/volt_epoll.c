#ifdef __linux__
#define _GNU_SOURCE
#include "volt_epoll.h"
#include <errno.h>
#include <string.h>
#include <sys/epoll.h>

_Static_assert(VOLT_EPOLLIN == EPOLLIN && VOLT_EPOLLOUT == EPOLLOUT, "EPOLLIN/OUT");
_Static_assert(VOLT_EPOLLERR == EPOLLERR && VOLT_EPOLLHUP == EPOLLHUP, "EPOLLERR/HUP");

static int ret(long r) { return r < 0 ? -errno : (int)r; }

int volt_epoll_create(void) { return ret(epoll_create1(EPOLL_CLOEXEC)); }

static int ctl(int epfd, int op, int fd, uint32_t events, uint64_t tag) {
    struct epoll_event ev;
    memset(&ev, 0, sizeof(ev));
    ev.events = events;
    ev.data.u64 = tag;
    return ret(epoll_ctl(epfd, op, fd, &ev));
}
int volt_epoll_add(int epfd, int fd, uint32_t events, uint64_t tag) { return ctl(epfd, EPOLL_CTL_ADD, fd, events, tag); }
int volt_epoll_mod(int epfd, int fd, uint32_t events, uint64_t tag) { return ctl(epfd, EPOLL_CTL_MOD, fd, events, tag); }
int volt_epoll_del(int epfd, int fd) { return ctl(epfd, EPOLL_CTL_DEL, fd, 0, 0); }

int volt_epoll_wait(int epfd, uint64_t *tags, uint32_t *events, int max, int timeout_ms) {
    struct epoll_event evs[64];
    if (max > 64) max = 64;
    if (max < 1) return -EINVAL;
    int n = epoll_wait(epfd, evs, max, timeout_ms);
    if (n < 0) return -errno;
    for (int i = 0; i < n; i++) { tags[i] = evs[i].data.u64; events[i] = evs[i].events; }
    return n;
}
#endif
