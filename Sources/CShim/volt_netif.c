#ifdef __linux__
#define _GNU_SOURCE
#include "volt_netif.h"
#include <errno.h>
#include <linux/if_bridge.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

_Static_assert(VOLT_FDB_ENTRY_SIZE == sizeof(struct __fdb_entry), "struct __fdb_entry");

// An ifreq ioctl on a throwaway datagram socket of the caller's network namespace.
static int ifreq_ioctl(unsigned long request, struct ifreq *ifr) {
    int s = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0) return -errno;
    int r = ioctl(s, request, ifr);
    int e = errno;
    close(s);
    return r < 0 ? -e : r;
}

static int named(struct ifreq *ifr, const char *name) {
    if (strlen(name) >= IFNAMSIZ) return -ENAMETOOLONG;
    memset(ifr, 0, sizeof(*ifr));
    strncpy(ifr->ifr_name, name, IFNAMSIZ - 1);
    return 0;
}

int volt_netif_set_up(const char *name) {
    struct ifreq ifr;
    int r = named(&ifr, name);
    if (r < 0) return r;
    if ((r = ifreq_ioctl(SIOCGIFFLAGS, &ifr)) < 0) return r;
    ifr.ifr_flags |= IFF_UP;
    return ifreq_ioctl(SIOCSIFFLAGS, &ifr);
}

int volt_netif_set_mtu(const char *name, int mtu) {
    struct ifreq ifr;
    int r = named(&ifr, name);
    if (r < 0) return r;
    ifr.ifr_mtu = mtu;
    return ifreq_ioctl(SIOCSIFMTU, &ifr);
}

int volt_netif_bridge_add(const char *bridge, int ifindex) {
    struct ifreq ifr;
    int r = named(&ifr, bridge);
    if (r < 0) return r;
    ifr.ifr_ifindex = ifindex;
    return ifreq_ioctl(SIOCBRADDIF, &ifr);
}
#endif
