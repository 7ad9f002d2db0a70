/* kvmclock (pvclock) for the test guests: the guest clock a Linux guest keeps
 * its time with, which the VMM holds still across a pause (KVM_SET_CLOCK).
 * One vCPU's time info in a static, 32-byte aligned record; paging is off, so
 * its address is its guest-physical address. */
#include "rt.h"

#define MSR_KVM_SYSTEM_TIME_NEW   0x4b564d01u
#define KVM_CPUID_SIGNATURE       0x40000000u
#define KVM_CPUID_FEATURES        0x40000001u
#define KVM_FEATURE_CLOCKSOURCE2  (1u << 3)

struct pvclock_time_info {
    u32 version;                        /* odd while KVM updates the record */
    u32 pad0;
    u64 tsc_timestamp;
    u64 system_time;                    /* ns at tsc_timestamp */
    u32 tsc_to_system_mul;
    s8  tsc_shift;
    u8  flags;
    u8  pad[2];
} __attribute__((packed));

static volatile struct pvclock_time_info clock __attribute__((aligned(32)));

int rt_kvmclock_start(void)
{
    u32 a, b, c, d;
    cpuid(KVM_CPUID_SIGNATURE, 0, &a, &b, &c, &d);
    if (b != 0x4b4d564b || c != 0x564b4d56 || d != 0x4d || a < KVM_CPUID_FEATURES)   /* "KVMKVMKVM\0\0\0" */
        return 0;
    cpuid(KVM_CPUID_FEATURES, 0, &a, &b, &c, &d);
    if (!(a & KVM_FEATURE_CLOCKSOURCE2))
        return 0;
    wrmsr(MSR_KVM_SYSTEM_TIME_NEW, (u64)(u32)&clock | 1);   /* bit 0: enable */
    return 1;
}

/* (delta << shift or >> -shift) * mul / 2^32, without a 64x64 multiply. */
static u64 scale(u64 delta, u32 mul, s8 shift)
{
    if (shift < 0)
        delta >>= -shift;
    else
        delta <<= shift;
    u64 lo = (u64)(u32)delta * mul, hi = (u64)(u32)(delta >> 32) * mul;
    return (lo >> 32) + hi;
}

u64 rt_kvmclock_ns(void)
{
    u32 version;
    u64 ns;
    do {
        version = clock.version;
        rt_mb();
        u64 now = rdtsc(), stamp = clock.tsc_timestamp;
        ns = clock.system_time + scale(now > stamp ? now - stamp : 0, clock.tsc_to_system_mul, clock.tsc_shift);
        rt_mb();
    } while ((version & 1) || version != clock.version);
    return ns;
}
