// TAP devices (linux/if_tun.h): the ioctl request numbers are _IOW/_IOR macros Swift
// cannot import, and struct ifreq's unions are clumsy there. Only what volt-net-worker needs.
// Convention: every function returns >= 0 on success or -errno; callers never read errno.
#pragma once
#include <stdint.h>

// ifr_flags for TUNSETIFF / TUNGETIFF (linux/if_tun.h).
#define VOLT_IFF_TAP 0x0002
#define VOLT_IFF_NO_PI 0x1000
#define VOLT_IFF_VNET_HDR 0x4000
#define VOLT_IFF_MULTI_QUEUE 0x0100
#define VOLT_IFF_ATTACH_QUEUE 0x0200
#define VOLT_IFF_DETACH_QUEUE 0x0400

// TUNSETOFFLOAD bits: what the reader of the TAP (the guest) can take.
#define VOLT_TUN_F_CSUM 0x01
#define VOLT_TUN_F_TSO4 0x02
#define VOLT_TUN_F_TSO6 0x04
#define VOLT_TUN_F_TSO_ECN 0x08
#define VOLT_TUN_F_UFO 0x10

/// Longest interface name including the NUL (IFNAMSIZ).
#define VOLT_IFNAMSIZ 16

/// open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC) + TUNSETIFF(name, flags).
/// `name` may be empty (the kernel picks one). The actual name is written to `name_out`
/// (VOLT_IFNAMSIZ bytes). Returns the fd.
int volt_tap_open(const char *name, int flags, char *name_out);
/// TUNGETIFF: the interface flags of an attached fd into *flags and its name into
/// `name_out` (VOLT_IFNAMSIZ bytes).
int volt_tap_get_iff(int fd, int *flags, char *name_out);
/// TUNGETFEATURES: the IFF_* flags this kernel's tun driver supports.
int volt_tap_get_features(int fd, unsigned int *features);
/// TUNSETVNETHDRSZ.
int volt_tap_set_vnet_hdr_size(int fd, int size);
/// TUNGETVNETHDRSZ.
int volt_tap_get_vnet_hdr_size(int fd, int *size);
/// TUNSETOFFLOAD with VOLT_TUN_F_* bits.
int volt_tap_set_offload(int fd, unsigned int offload);
/// TUNSETPERSIST: 0 makes the TAP vanish when its last fd closes, 1 keeps it.
int volt_tap_set_persist(int fd, int persist);
/// TUNSETQUEUE with VOLT_IFF_ATTACH_QUEUE or VOLT_IFF_DETACH_QUEUE (multiqueue TAPs).
int volt_tap_set_queue(int fd, int flags);
/// Sets O_NONBLOCK on `fd` (kept for inherited TAP and eventfd descriptors).
int volt_set_nonblocking(int fd);
/// readv / writev returning -errno (no EINTR retry). writev of one vector is a write().
long volt_readv(int fd, const void *iov, int iovcnt);
long volt_writev(int fd, const void *iov, int iovcnt);

/// ioctl request numbers the net worker still issues once sandboxed (for its seccomp
/// argument filter): TUNSETOFFLOAD and TUNSETQUEUE.
extern const unsigned long volt_tunsetoffload_request;
extern const unsigned long volt_tunsetqueue_request;
