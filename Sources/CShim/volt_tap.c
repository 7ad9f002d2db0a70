#ifdef __linux__
#define _GNU_SOURCE
#include "volt_tap.h"
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

// The header's copies must agree with the kernel's.
_Static_assert(VOLT_IFF_TAP == IFF_TAP, "IFF_TAP");
_Static_assert(VOLT_IFF_NO_PI == IFF_NO_PI, "IFF_NO_PI");
_Static_assert(VOLT_IFF_VNET_HDR == IFF_VNET_HDR, "IFF_VNET_HDR");
_Static_assert(VOLT_IFF_MULTI_QUEUE == IFF_MULTI_QUEUE, "IFF_MULTI_QUEUE");
_Static_assert(VOLT_IFF_ATTACH_QUEUE == IFF_ATTACH_QUEUE, "IFF_ATTACH_QUEUE");
_Static_assert(VOLT_IFF_DETACH_QUEUE == IFF_DETACH_QUEUE, "IFF_DETACH_QUEUE");
_Static_assert(VOLT_TUN_F_CSUM == TUN_F_CSUM, "TUN_F_CSUM");
_Static_assert(VOLT_TUN_F_TSO4 == TUN_F_TSO4, "TUN_F_TSO4");
_Static_assert(VOLT_TUN_F_TSO6 == TUN_F_TSO6, "TUN_F_TSO6");
_Static_assert(VOLT_TUN_F_TSO_ECN == TUN_F_TSO_ECN, "TUN_F_TSO_ECN");
_Static_assert(VOLT_TUN_F_UFO == TUN_F_UFO, "TUN_F_UFO");
_Static_assert(VOLT_IFNAMSIZ == IFNAMSIZ, "IFNAMSIZ");

static int ret(long r) { return r < 0 ? -errno : (int)r; }

int volt_tap_open(const char *name, int flags, char *name_out) {
    if (strlen(name) >= IFNAMSIZ) return -ENAMETOOLONG;
    int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return -errno;
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
    ifr.ifr_flags = (short)flags;
    if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    memcpy(name_out, ifr.ifr_name, IFNAMSIZ);
    name_out[IFNAMSIZ - 1] = 0;
    return fd;
}

int volt_tap_get_iff(int fd, int *flags, char *name_out) {
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    if (ioctl(fd, TUNGETIFF, &ifr) < 0) return -errno;
    *flags = (unsigned short)ifr.ifr_flags;
    memcpy(name_out, ifr.ifr_name, IFNAMSIZ);
    name_out[IFNAMSIZ - 1] = 0;
    return 0;
}

int volt_tap_get_features(int fd, unsigned int *features) { return ret(ioctl(fd, TUNGETFEATURES, features)); }
int volt_tap_set_vnet_hdr_size(int fd, int size) { return ret(ioctl(fd, TUNSETVNETHDRSZ, &size)); }
int volt_tap_get_vnet_hdr_size(int fd, int *size) { return ret(ioctl(fd, TUNGETVNETHDRSZ, size)); }
int volt_tap_set_offload(int fd, unsigned int offload) { return ret(ioctl(fd, TUNSETOFFLOAD, (unsigned long)offload)); }

int volt_tap_set_persist(int fd, int persist) { return ret(ioctl(fd, TUNSETPERSIST, (unsigned long)persist)); }

int volt_tap_set_queue(int fd, int flags) {
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    ifr.ifr_flags = (short)flags;
    return ret(ioctl(fd, TUNSETQUEUE, &ifr));
}

int volt_set_nonblocking(int fd) {
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0) return -errno;
    if (fl & O_NONBLOCK) return 0;
    return ret(fcntl(fd, F_SETFL, fl | O_NONBLOCK));
}

/* syscall(2), not the libc wrappers: readv/write/writev are cancellation points and
   their wrappers switch the thread's cancel state around every call (~50 instructions
   per frame); the workers never cancel threads. */
long volt_readv(int fd, const void *iov, int iovcnt) {
    long r = syscall(SYS_readv, (long)fd, iov, (long)iovcnt);
    return r < 0 ? -errno : r;
}
long volt_writev(int fd, const void *iov, int iovcnt) {
    const struct iovec *v = (const struct iovec *)iov;
    /* One vector (a frame in one guest buffer, the usual TX layout): plain write(),
       which skips the kernel's iovec import. */
    long r = iovcnt == 1 ? syscall(SYS_write, (long)fd, v[0].iov_base, v[0].iov_len)
                          : syscall(SYS_writev, (long)fd, v, (long)iovcnt);
    return r < 0 ? -errno : r;
}
const unsigned long volt_tunsetoffload_request = TUNSETOFFLOAD;
const unsigned long volt_tunsetqueue_request = TUNSETQUEUE;
#endif
