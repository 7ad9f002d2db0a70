/* The TSC's frequency, for guests that measure time with rdtsc: stated by
 * CPUID, or calibrated against the LAPIC timer (1 GHz on KVM).  How precise
 * it is on this host: README.md, virtio_rng.elf, "Time". */
#include "rt.h"

/* LAPIC timer registers, for the calibration only (rt/apic.c owns the rest). */
#define LAPIC_LVT_TIMER    0x320
#define LAPIC_TIMER_ICR    0x380
#define LAPIC_TIMER_CCR    0x390
#define LAPIC_TIMER_DCR    0x3e0
#define LAPIC_DCR_DIV1     0xb
#define CAL_COUNTS         (RT_TSC_CAL_MS * 1000000u)   /* at the 1 GHz LAPIC clock */
#define CAL_TSC_LIMIT      20000000000ull   /* give up if the LAPIC count does not move */

u32 rt_tsc_khz_cpuid(const char **src)
{
    u32 a, b, c, d, max;
    cpuid(0, 0, &max, &b, &c, &d);
    if (max >= 0x15) {
        cpuid(0x15, 0, &a, &b, &c, &d);   /* TSC = crystal (ecx Hz) * ebx / eax */
        if (a && b && c) {
            *src = "cpuid15";
            return (u32)rt_udiv64(rt_udiv64((u64)c * b, a), 1000);
        }
    }
    /* Leaf 0x16 only gives whole MHz (0.1% off or worse): not good enough. */
    cpuid(1, 0, &a, &b, &c, &d);
    if (c & (1u << 31)) {
        cpuid(0x40000000, 0, &a, &b, &c, &d);
        if (a >= 0x40000010) {
            cpuid(0x40000010, 0, &a, &b, &c, &d);   /* eax = TSC kHz (VMware/QEMU leaf) */
            if (a) {
                *src = "cpuid40000010";
                return a;
            }
        }
    }
    return 0;
}

/* One (TSC, LAPIC count) pair: the TSC at the middle of the MMIO read, from
 * the best of a few tries; *width = TSC cycles the read took. */
static void cal_sample(u64 *tsc, u32 *count, u64 *width)
{
    *width = ~0ull;
    for (u32 i = 0; i < 4; i++) {
        u64 t0 = rdtsc();
        u32 c = mmio_read32(LAPIC_BASE + LAPIC_TIMER_CCR);
        u64 t1 = rdtsc();
        if (t1 - t0 < *width) {
            *width = t1 - t0;
            *tsc = t0 + (t1 - t0) / 2;
            *count = c;
        }
    }
}

/* TSC kHz from RT_TSC_CAL_MS of the LAPIC timer (one-shot, masked, divide by
 * 1, so a count is 1 ns).  Interrupts must be off; the runtime's periodic tick
 * is restarted afterwards.  *ppm = worst-case error from the two reads' widths. */
u32 rt_tsc_khz_lapic(u32 *ppm)
{
    u64 t0, t1, w0, w1;
    u32 c0, c1;
    mmio_write32(LAPIC_BASE + LAPIC_LVT_TIMER, (1u << 16) | RT_VEC_TIMER);
    mmio_write32(LAPIC_BASE + LAPIC_TIMER_DCR, LAPIC_DCR_DIV1);
    mmio_write32(LAPIC_BASE + LAPIC_TIMER_ICR, 0xffffffffu);
    cal_sample(&t0, &c0, &w0);
    u32 khz = 0;
    for (;;) {
        u32 c = mmio_read32(LAPIC_BASE + LAPIC_TIMER_CCR);
        if (c0 - c >= CAL_COUNTS && c <= c0) {
            cal_sample(&t1, &c1, &w1);
            u64 cycles = t1 - t0;
            khz = (u32)rt_udiv64(cycles * 1000000u, c0 - c1);   /* cycles per ns * 1e6 */
            *ppm = (u32)rt_udiv64_64((w0 + w1) / 2 * 1000000u, cycles);
            break;
        }
        if (rdtsc() - t0 > CAL_TSC_LIMIT)
            break;
    }
    lapic_timer_periodic(RT_VEC_TIMER, RT_TIMER_COUNT, RT_TIMER_DCR_DIV16);
    return khz;
}
