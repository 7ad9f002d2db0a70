// Host network interfaces for bridge-mode NICs: bring a TAP up, set its MTU, make it a
// bridge port. The ioctls take struct ifreq (unions Swift handles poorly) and SIOCBRADDIF
// lives in linux/sockios.h, so these are thin C wrappers.
// Convention: every function returns >= 0 on success or -errno; callers never read errno.
#pragma once

/// SIOCGIFFLAGS + SIOCSIFFLAGS with IFF_UP set.
int volt_netif_set_up(const char *name);
/// SIOCSIFMTU.
int volt_netif_set_mtu(const char *name, int mtu);
/// SIOCBRADDIF: makes interface `ifindex` a port of bridge `bridge`.
int volt_netif_bridge_add(const char *bridge, int ifindex);

/// Size of one struct __fdb_entry (linux/if_bridge.h) in /sys/class/net/BR/brforward.
#define VOLT_FDB_ENTRY_SIZE 16
