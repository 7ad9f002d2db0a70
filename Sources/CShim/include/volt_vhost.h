// In-kernel vhost-net (/dev/vhost-net): the ioctl request numbers are _IO/_IOR/_IOW macros
// (linux/vhost.h) Swift cannot import. Only the requests volt-vmm issues today: it probes
// the device (SET_OWNER + GET_FEATURES) and does not wire a vhost-net data path yet.
#pragma once

/// VHOST_SET_OWNER: binds the vhost device to the calling process (no argument).
extern const unsigned long VOLT_VHOST_SET_OWNER;
/// VHOST_GET_FEATURES: the virtio feature bits the in-kernel device offers (uint64_t *).
extern const unsigned long VOLT_VHOST_GET_FEATURES;
