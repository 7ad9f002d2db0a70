// Memory ordering for rings shared with a guest (virtio split virtqueues).
// Swift's standard library has no free-standing thread fence and no atomic access
// through a raw pointer into foreign memory, so these few static inline helpers
// (imported and inlined by Swift; no .c body needed) give single, untorn loads and
// stores of ring indices and the fences the virtio spec asks for (2.7.13, 2.7.7).
// Pointers must be naturally aligned; VirtioCore checks that when a ring is set up.
#pragma once
#include <stdint.h>

/// Orders earlier loads before later loads and stores (device: after reading avail.idx).
static inline void volt_fence_acquire(void) { __atomic_thread_fence(__ATOMIC_ACQUIRE); }
/// Orders earlier loads and stores before later stores (device: before writing used.idx).
static inline void volt_fence_release(void) { __atomic_thread_fence(__ATOMIC_RELEASE); }
/// Full barrier, including store->load (before reading used_event / re-reading avail.idx).
static inline void volt_fence_full(void) { __atomic_thread_fence(__ATOMIC_SEQ_CST); }

/// One relaxed 16-bit load: read exactly once, never torn, never re-read by the compiler.
static inline uint16_t volt_load_u16(const void *p) { return __atomic_load_n((const uint16_t *)p, __ATOMIC_RELAXED); }
/// One relaxed 16-bit store.
static inline void volt_store_u16(void *p, uint16_t v) { __atomic_store_n((uint16_t *)p, v, __ATOMIC_RELAXED); }

/// Counters shared between processes (the metrics page): relaxed 64-bit add and load.
static inline void volt_add_u64(void *p, uint64_t v) { __atomic_fetch_add((uint64_t *)p, v, __ATOMIC_RELAXED); }
static inline uint64_t volt_load_u64(const void *p) { return __atomic_load_n((const uint64_t *)p, __ATOMIC_RELAXED); }
/// Publishes a count after the entries it covers are written / reads it before them.
static inline void volt_store_u32_release(void *p, uint32_t v) { __atomic_store_n((uint32_t *)p, v, __ATOMIC_RELEASE); }
static inline uint32_t volt_load_u32_acquire(const void *p) { return __atomic_load_n((const uint32_t *)p, __ATOMIC_ACQUIRE); }
