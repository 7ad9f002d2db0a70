#ifdef __linux__
#define _GNU_SOURCE
#include "net_test_shim.h"
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netpacket/packet.h>
#include <poll.h>
#include <sched.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

int nts_enter_netns(const char *path) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -errno;
    int r = setns(fd, CLONE_NEWNET);
    int e = errno;
    close(fd);
    return r < 0 ? -e : 0;
}

int nts_packet_socket(const char *ifname, int ethertype) {
    int fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, htons((unsigned short)ethertype));
    if (fd < 0) return -errno;
    struct sockaddr_ll sll;
    memset(&sll, 0, sizeof(sll));
    sll.sll_family = AF_PACKET;
    sll.sll_protocol = htons((unsigned short)ethertype);
    sll.sll_ifindex = (int)if_nametoindex(ifname);
    if (sll.sll_ifindex == 0 || bind(fd, (struct sockaddr *)&sll, sizeof(sll)) < 0) {
        int e = errno ? errno : ENODEV;
        close(fd);
        return -e;
    }
    return fd;
}

static long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

int nts_packet_recv(int fd, void *buf, size_t len, int timeout_ms) {
    long deadline = now_ms() + timeout_ms;
    for (;;) {
        struct sockaddr_ll from;
        socklen_t fl = sizeof(from);
        ssize_t n = recvfrom(fd, buf, len, 0, (struct sockaddr *)&from, &fl);
        if (n >= 0) {
            if (from.sll_pkttype == PACKET_OUTGOING) continue;
            return (int)n;
        }
        if (errno == EINTR) continue;
        if (errno != EAGAIN) return -errno;
        long left = deadline - now_ms();
        if (left <= 0) return 0;
        struct pollfd p = { .fd = fd, .events = POLLIN };
        poll(&p, 1, (int)left);
    }
}

int nts_pin_thread(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return sched_setaffinity(0, sizeof(set), &set) < 0 ? -errno : 0;
}

int nts_packet_send(int fd, const void *buf, size_t len) {
    ssize_t n = send(fd, buf, len, 0);
    return n < 0 ? -errno : (int)n;
}
#endif
