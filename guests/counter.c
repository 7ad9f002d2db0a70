/* counter.elf: counts and checksums a memory region, printing as it goes — what
 * a snapshot must carry over exactly.  At start it fills counter.kib KiB (256)
 * at 16 MiB with a pattern; then every counter.ms (100) of TSC time it changes
 * one word of the region, bumps its count and prints
 *     VOLT-GUEST counter: count=K sum=0xS check=ok kvm_ms=M
 * where S is the xor of every word, recomputed from memory each line and
 * compared with the running value it keeps in a register-held variable
 * (check=BAD if they differ).  A restored guest prints the count after the one
 * snapshotted, with a sum that matches.  counter.touch_mib=N first writes one
 * byte in every page of N MiB at 32 MiB (a heavily touched guest for the
 * snapshot benchmarks); counter.lines=L stops after L lines (0 = forever). */
#include "rt.h"
#include "start_info.h"

#define REGION_BASE   0x1000000u   /* 16 MiB: above the image, inside any guest volt-vmm boots */
#define TOUCH_BASE    0x2000000u   /* 32 MiB */

static u64 cmdline_num(u32 si, const char *key, u64 def)
{
    u64 v;
    return rt_cmdline_u64(si, key, &v) > 0 ? v : def;
}

static u64 mix(u64 x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    return x;
}

static u64 region_sum(volatile u64 *w, u32 words)
{
    u64 sum = 0;
    for (u32 i = 0; i < words; i++)
        sum ^= w[i];
    return sum;
}

void guest_main(u32 si)
{
    u64 kib = cmdline_num(si, "counter.kib", 256);
    u64 period_ms = cmdline_num(si, "counter.ms", 100);
    u64 lines = cmdline_num(si, "counter.lines", 0);
    u64 touch_mib = cmdline_num(si, "counter.touch_mib", 0);
    if (kib == 0 || kib > 8192)
        kib = 256;
    if (period_ms == 0)
        period_ms = 1;

    rt_tick_start();
    const char *src = "none";
    u32 ppm = 0;
    u64 tsc_khz = rt_tsc_khz_cpuid(&src);
    if (!tsc_khz)
        tsc_khz = rt_tsc_khz_lapic(&ppm);
    int kvmclock = rt_kvmclock_start();
    if (!tsc_khz) {
        rt_printf("VOLT-GUEST counter: FAIL no TSC frequency\n");
        rt_tick_stop();
        return;
    }

    for (u64 page = 0; page < touch_mib * 256; page++)
        *(volatile u8 *)(TOUCH_BASE + (u32)page * 4096u) = (u8)(page | 1);

    volatile u64 *w = (volatile u64 *)REGION_BASE;
    u32 words = (u32)kib * 128u;
    u64 sum = 0;
    for (u32 i = 0; i < words; i++) {
        w[i] = mix(i + 1);
        sum ^= w[i];
    }
    rt_printf("VOLT-GUEST counter: region=%llu KiB touched=%llu MiB period_ms=%llu kvmclock=%s\n", kib, touch_mib, period_ms,
              kvmclock ? "yes" : "no");

    u64 period = period_ms * tsc_khz, due = rdtsc(), first_ns = kvmclock ? rt_kvmclock_ns() : 0;
    for (u64 count = 1; lines == 0 || count <= lines; count++) {
        /* Halted between lines (the 10 ms tick wakes it). A TSC that jumped (a restore
         * where KVM keeps the host's TSC) starts a new schedule, not a burst. */
        while (rdtsc() < due)
            rt_wait_irq();
        u64 late = rdtsc() - due;
        due = late >= period ? rdtsc() + period : due + period;
        u32 j = (u32)mix(count) % words;
        u64 old = w[j], new = mix(old ^ count);
        w[j] = new;
        sum ^= old ^ new;
        u64 now = region_sum(w, words);
        u64 kvm_ms = kvmclock ? rt_udiv64(rt_kvmclock_ns() - first_ns, 1000000u) : 0;
        rt_printf("VOLT-GUEST counter: count=%llu sum=0x%llx check=%s kvm_ms=%llu\n", count, now, now == sum ? "ok" : "BAD",
                  kvm_ms);
    }
    rt_tick_stop();
    rt_printf("VOLT-GUEST counter: done\n");
}
