// In-kernel vhost-net (/dev/vhost-net): the ioctl request numbers are _IO/_IOR/_IOW macros
// (linux/vhost.h) Swift cannot import, and struct vhost_memory ends in a flexible array.
// Convention: every function returns >= 0 on success or -errno; callers never read errno.
#pragma once
#include <stdint.h>

/// VHOST_SET_OWNER: binds the vhost device to the calling process (no argument).
extern const unsigned long VOLT_VHOST_SET_OWNER;
/// VHOST_GET_FEATURES: the virtio feature bits the in-kernel device offers (uint64_t *).
extern const unsigned long VOLT_VHOST_GET_FEATURES;

/// VHOST_SET_FEATURES.
int volt_vhost_set_features(int fd, uint64_t features);
/// VHOST_SET_MEM_TABLE with `count` regions (guest physical address, size, user address).
int volt_vhost_set_mem_table(int fd, const uint64_t *guest_phys, const uint64_t *sizes,
                             const uint64_t *user_addrs, unsigned count);
/// VHOST_SET_VRING_NUM / VHOST_SET_VRING_BASE (struct vhost_vring_state).
int volt_vhost_set_vring_num(int fd, unsigned index, unsigned num);
int volt_vhost_set_vring_base(int fd, unsigned index, unsigned base);
/// VHOST_GET_VRING_BASE: stops the ring; returns its next available index.
int volt_vhost_get_vring_base(int fd, unsigned index);
/// VHOST_SET_VRING_ADDR with user addresses of the descriptor table, used and avail rings.
int volt_vhost_set_vring_addr(int fd, unsigned index, uint64_t desc, uint64_t used, uint64_t avail);
/// VHOST_SET_VRING_KICK / VHOST_SET_VRING_CALL (struct vhost_vring_file).
int volt_vhost_set_vring_kick(int fd, unsigned index, int eventfd);
int volt_vhost_set_vring_call(int fd, unsigned index, int eventfd);
/// VHOST_NET_SET_BACKEND: ring `index` moves packets to/from `tap_fd` (-1 detaches).
int volt_vhost_net_set_backend(int fd, unsigned index, int tap_fd);
