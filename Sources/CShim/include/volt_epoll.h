// epoll without struct epoll_event in Swift (it is packed on x86_64, and its data
// union is awkward to import). Events carry a caller-chosen 64-bit tag.
// Convention: every function returns >= 0 on success or -errno; callers never read errno.
#pragma once
#include <stdint.h>

#define VOLT_EPOLLIN 0x001u
#define VOLT_EPOLLOUT 0x004u
#define VOLT_EPOLLERR 0x008u
#define VOLT_EPOLLHUP 0x010u

/// epoll_create1(EPOLL_CLOEXEC).
int volt_epoll_create(void);
/// EPOLL_CTL_ADD / _MOD / _DEL (level-triggered; `events` from VOLT_EPOLL*).
int volt_epoll_add(int epfd, int fd, uint32_t events, uint64_t tag);
int volt_epoll_mod(int epfd, int fd, uint32_t events, uint64_t tag);
int volt_epoll_del(int epfd, int fd);
/// epoll_wait for at most `max` (<= 64) events: their tags and event bits go to
/// `tags` / `events`. Returns the count (0 on timeout). Does not retry EINTR.
int volt_epoll_wait(int epfd, uint64_t *tags, uint32_t *events, int max, int timeout_ms);
