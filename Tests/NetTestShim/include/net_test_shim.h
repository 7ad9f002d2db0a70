// Test-only helpers for NetWorkerTests: entering a network namespace on the calling
// thread and an AF_PACKET peer socket on the test TAP. Returns >= 0 or -errno.
#pragma once
#include <stddef.h>

/// setns(open(path), CLONE_NEWNET) for the calling thread only.
int nts_enter_netns(const char *path);
/// AF_PACKET SOCK_RAW socket for `ethertype`, bound to interface `ifname`, non-blocking.
int nts_packet_socket(const char *ifname, int ethertype);
/// Waits up to `timeout_ms` for one frame not sent by this host's own sockets
/// (PACKET_OUTGOING skipped). Returns its length, 0 on timeout.
int nts_packet_recv(int fd, void *buf, size_t len, int timeout_ms);
/// send() of one frame.
int nts_packet_send(int fd, const void *buf, size_t len);

/// Binds the calling thread to CPU `cpu` (sched_setaffinity). Returns 0 or -errno.
int nts_pin_thread(int cpu);
