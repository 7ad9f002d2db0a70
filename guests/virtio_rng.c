/* virtio_rng.elf: reads rng.bytes of entropy from the first virtio-rng device
 * (virtio 1.2 section 5.4, modern virtio-mmio) in requests of rng.chunk bytes,
 * up to rng.depth in flight, then reports byte statistics and the rate.
 *
 * Every request is one device-writable descriptor pointing straight into free
 * RAM above our image, so the bytes land where they are analysed and the
 * timed loop does no per-byte work: guest code runs emulated (~0.5-0.7 us
 * per instruction) on the PVM host, and a histogram inside the loop would be
 * what the rate measures.  A short read is re-requested for the rest of the
 * same buffer, so the received bytes always end up contiguous.
 *
 * Time is the TSC: its frequency comes from CPUID (leaf 0x15 or 0x40000010)
 * or is calibrated against the LAPIC timer, which counts at 1 GHz on KVM.
 * Completion by interrupt; every wait bounded by the TSC.  Lines: README.md. */
#include "rt.h"
#include "start_info.h"
#include "virtio_mmio.h"

#define VIRTIO_ID_RNG      4
#define VEC_RNG            0x52
#define MAX_BYTES          (16u << 20)  /* keeps the chi-square sums in 64 bits (analysis: ~2 min emulated) */
#define MAX_SPINS          1000000u     /* loop passes without new bytes: a last-resort bound */
#define ZERO_CHECK_MIN     8u           /* an all-zero completion shorter than this can be chance */
#define MAX_MODULES        16u

extern char __image_end[];             /* link.ld */

static struct virtq_mem ring;
static struct vdev dev;
static struct virtq vq;
static u32 req_addr[VQ_MAX], req_size[VQ_MAX];   /* indexed by descriptor head */
static u32 counts[256];
static u32 requests, short_reads, empty_reads, zero_buffers, wakeups;

static u64 cmdline_num(u32 si, const char *key, u64 def)
{
    u64 v;
    int r = rt_cmdline_u64(si, key, &v);
    if (r < 0)
        rt_printf("VOLT-GUEST virtio_rng: bad %s= value, using %llu\n", key, def);
    return r > 0 ? v : def;
}

/* ---- where the bytes go ---- */

static u64 region_lo, region_hi;

/* Shrinks [region_lo, region_hi) so it does not overlap [a, a+len): moves the
 * start past it if it covers the start, else ends the region below it. */
static int avoid(u64 a, u64 len)
{
    if (len == 0 || a >= region_hi || a + len <= region_lo)
        return 0;
    if (a <= region_lo)
        region_lo = (a + len + 4095) & ~4095ull;
    else
        region_hi = a;
    return 1;
}

/* Free RAM from the end of our image to the end of its e820 RAM entry, below
 * anything the VMM put there.  Returns the size (0 if there is no memmap). */
static u32 free_ram(u32 sip, u32 *base)
{
    const struct hvm_start_info *si = (const struct hvm_start_info *)sip;
    region_lo = ((u32)__image_end + 4095) & ~4095u;
    region_hi = 0;
    if (!si || si->magic != HVM_START_MAGIC || si->version < 1 || !si->memmap_paddr ||
        si->memmap_paddr >= 0x100000000ull)
        return 0;
    const struct hvm_memmap_entry *mm = (const struct hvm_memmap_entry *)(u32)si->memmap_paddr;
    for (u32 i = 0; i < si->memmap_entries; i++)
        if (mm[i].type == 1 && mm[i].addr <= region_lo && region_lo < mm[i].addr + mm[i].size)
            region_hi = mm[i].addr + mm[i].size;
    if (region_hi > 0xfffff000u)        /* our pointers are 32-bit */
        region_hi = 0xfffff000u;
    const char *cmd = rt_cmdline(sip);
    u32 nmod = si->nr_modules < MAX_MODULES ? si->nr_modules : MAX_MODULES;
    const struct hvm_modlist_entry *mods = (const struct hvm_modlist_entry *)(u32)si->modlist_paddr;
    if (si->modlist_paddr >= 0x100000000ull)
        nmod = 0;
    /* Each pass moves an edge; repeat until nothing overlaps any more. */
    for (u32 pass = 0, changed = 1; changed && pass < 2 * MAX_MODULES + 8; pass++) {
        changed = avoid(sip, sizeof(*si));
        changed |= avoid(si->memmap_paddr, (u64)si->memmap_entries * sizeof(*mm));
        if (cmd)
            changed |= avoid((u32)cmd, rt_strlen(cmd) + 1);
        changed |= avoid(si->modlist_paddr, (u64)nmod * sizeof(*mods));
        for (u32 i = 0; i < nmod; i++)
            changed |= avoid(mods[i].paddr, mods[i].size);
    }
    *base = (u32)region_lo;
    return region_hi > region_lo ? (u32)(region_hi - region_lo) : 0;
}

/* ---- requests ---- */

static void post(u32 addr, u32 size)
{
    struct vq_buf b = { (const void *)addr, size, 1 };
    int head = vq_add(&vq, &b, 1);      /* callers make sure a descriptor is free */
    req_addr[head] = addr;
    req_size[head] = size;
    requests++;
}

static u32 inflight(void)
{
    return (u32)(vq.num - vq.num_free);
}

/* Posts new chunks from offset `next` until `depth` requests are in flight;
 * returns the new offset. */
static u32 fill(u32 base, u32 next, u32 want, u32 chunk, u32 depth)
{
    while (next < want && vq.num_free && inflight() < depth) {
        u32 n = want - next < chunk ? want - next : chunk;
        post(base + next, n);
        next += n;
    }
    return next;
}

static int all_zero(const u8 *p, u32 n)
{
    for (u32 i = 0; i < n; i++)         /* random data stops at the first byte, nearly always */
        if (p[i])
            return 0;
    return 1;
}

/* Byte histogram and the longest run of one value over the received bytes.
 * Emulated, this costs ~7 us per byte (11 instructions).  Word-at-a-time
 * versions measured only 1.3x faster, not worth the extra code. */
static u32 analyse(const u8 *p, u32 n)
{
    u32 prev = 0x100, run = 0, longest = 0;
    for (u32 i = 0; i < n; i++) {
        u32 b = p[i];
        counts[b]++;
        if (b == prev) {
            run++;
        } else {
            if (run > longest)
                longest = run;
            prev = b;
            run = 1;
        }
    }
    return run > longest ? run : longest;
}

/* chi-square x100 over the 256 counts, rounded:
 *   sum (c - T/256)^2 / (T/256) = sum (256c - T)^2 / (256 T).
 * With T <= 16 MiB, (256c - T)^2 fits 64 bits; each term is split into
 * quotient and remainder by T so nothing overflows. */
static u64 chi2x100(u32 total)
{
    u64 q = 0, r = 0;
    for (u32 b = 0; b < 256; b++) {
        u64 s = (u64)counts[b] * 256;
        u64 d = s > total ? s - total : total - s;
        u64 sq = d * d, qi = rt_udiv64(sq, total);
        q += qi;
        r += sq - qi * total;
    }
    return rt_udiv64(q * 100 + rt_udiv64(r * 100, total) + 128, 256);
}

void guest_main(u32 si)
{
    u64 want64 = cmdline_num(si, "rng.bytes", 65536);
    u64 chunk64 = cmdline_num(si, "rng.chunk", 4096);
    u64 depth64 = cmdline_num(si, "rng.depth", 4);
    u64 timeout_ms = cmdline_num(si, "rng.timeout_ms", 5000);
    const char *fail = NULL;            /* set: print "FAIL <fail>" at the end */
    int failed = 0, ticking = 0, routed = 0;

    if (!vdev_find(si, VIRTIO_ID_RNG, "virtio_rng", &dev)) {
        fail = "no device";
        goto out;
    }
    rt_printf("VOLT-GUEST virtio_rng: device at 0x%x irq %u\n", dev.base, dev.irq);

    u32 base, room = free_ram(si, &base);
    u32 cap = room < MAX_BYTES ? room : MAX_BYTES;
    if (cap == 0) {
        fail = "no free RAM for the data (no e820 memmap in start_info?)";
        goto out;
    }
    if (want64 > cap) {
        rt_printf("VOLT-GUEST virtio_rng: note rng.bytes=%llu capped at %u (limit %u, free RAM %u)\n", want64, cap,
                  MAX_BYTES, room);
        want64 = cap;
    }
    u32 want = (u32)want64;
    u32 chunk = chunk64 == 0 ? 1 : chunk64 > want ? (want ? want : 1) : (u32)chunk64;

    u32 apic_id = rt_tick_start();
    ticking = 1;

    /* The clock first, so DRIVER_OK comes right before the first request
     * (QEMU, for one, starts its rate-limit period at DRIVER_OK). */
    const char *src = "none";
    u32 ppm = 0, tsc_khz = rt_tsc_khz_cpuid(&src);
    if (tsc_khz) {
        rt_printf("VOLT-GUEST virtio_rng: tsc_khz=%u source=%s\n", tsc_khz, src);
    } else {
        tsc_khz = rt_tsc_khz_lapic(&ppm);
        if (tsc_khz)
            rt_printf("VOLT-GUEST virtio_rng: tsc_khz=%u source=lapic calibration_ms=%u uncertainty_ppm=%u\n",
                      tsc_khz, RT_TSC_CAL_MS, ppm);
        else
            rt_printf("VOLT-GUEST virtio_rng: tsc_khz=0 source=none (LAPIC timer did not count)\n");
    }
    /* Timeouts need some frequency: an unknown TSC is taken as 10 GHz, so
     * the wait is at least as long as asked. */
    u64 timeout_cycles = timeout_ms * (tsc_khz ? tsc_khz : 10000000u);

    if (!vdev_negotiate(&dev, 1ull << VIRTIO_F_VERSION_1, 0)) {
        fail = "feature negotiation refused";
        goto out;
    }
    if (!vdev_queue_setup(&dev, &vq, &ring, 0)) {
        fail = "queue setup";
        goto out;
    }
    if (!vdev_route_irq(&dev, VEC_RNG, apic_id)) {
        vdev_set_failed(&dev);
        fail = "irq routing";
        goto out;
    }
    routed = 1;
    u32 depth = depth64 == 0 ? 1 : depth64 > vq.num ? vq.num : (u32)depth64;
    rt_printf("VOLT-GUEST virtio_rng: vendor=0x%x queue_size=%u device_features=0x%llx features=0x%llx "
              "depth=%u chunk=%u buffer=0x%x room=%u\n",
              dev.vendor_id, vq.num, dev.device_features, dev.features, depth, chunk, base, room);
    vdev_driver_ok(&dev);

    /* The timed loop: the first notify to the last completion. */
    u32 next = 0, received = 0, spins = 0;
    next = fill(base, next, want, chunk, depth);
    u64 t_start = rdtsc(), t_end = t_start, progress = t_start;
    if (requests)
        vq_kick(&dev, &vq);
    while (received < want) {
        if (!vq_has_used(&vq)) {
            if (rdtsc() - progress >= timeout_cycles || ++spins > MAX_SPINS) {
                rt_printf("VOLT-GUEST virtio_rng: FAIL timeout waiting for completions received=%u of %u "
                          "inflight=%u requests=%u irqs=%u\n",
                          received, want, inflight(), requests, dev.irqs);
                vdev_set_failed(&dev);
                failed = 1;
                goto out;
            }
            wakeups++;
            rt_wait_irq();              /* the device IRQ or the 10 ms tick wakes us */
            continue;
        }
        u64 now = rdtsc();
        u32 got = 0, len;
        int head;
        for (;;) {
            /* Peek at the id so a bad one can be reported. */
            u32 id = ((volatile struct virtq_used *)&vq.mem->used)->ring[vq.last_used % vq.num].id;
            if ((head = vq_pop_used(&vq, &len)) == -1)
                break;
            if (head < 0) {
                rt_printf("VOLT-GUEST virtio_rng: FAIL bad used id=%u (queue size %u)\n", id, vq.num);
                vdev_set_failed(&dev);
                failed = 1;
                goto out;
            }
            u32 addr = req_addr[head], size = req_size[head];
            if (len > size) {
                rt_printf("VOLT-GUEST virtio_rng: FAIL bad used len=%u for a %u-byte buffer (id=%u)\n", len, size,
                          id);
                vdev_set_failed(&dev);
                failed = 1;
                goto out;
            }
            if (len == 0)
                empty_reads++;
            else if (len < size)
                short_reads++;
            if (len >= ZERO_CHECK_MIN && all_zero((const u8 *)addr, len))
                zero_buffers++;
            received += len;
            got += len;
            if (len < size)             /* ask again for the rest of this buffer */
                post(addr + len, size - len);
        }
        if (got) {
            progress = now;
            spins = 0;
        }
        if (received == want) {
            t_end = now;
            break;
        }
        next = fill(base, next, want, chunk, depth);
        /* One notify per batch of completions, even when nothing new was
         * posted: QEMU's rate limiter re-arms its period timer only when the
         * queue is processed, and a driver that stays quiet while its last
         * buffer waits for the next quota waits forever (seen with
         * max-bytes=3000,period=100).  Linux's driver kicks on every buffer. */
        vq_kick(&dev, &vq);
    }

    /* Statistics, after the clock has stopped. */
    u64 t_analyse = rdtsc();
    u32 longest = analyse((const u8 *)base, want);
    t_analyse = rdtsc() - t_analyse;
    u32 distinct = 0, min = ~0u, max = 0;
    for (u32 b = 0; b < 256; b++) {
        distinct += counts[b] != 0;
        min = counts[b] < min ? counts[b] : min;
        max = counts[b] > max ? counts[b] : max;
    }
    u64 cycles = t_end - t_start;
    u64 elapsed_us = tsc_khz ? rt_udiv64(cycles * 1000 + tsc_khz / 2, tsc_khz) : 0;
    u64 rate_bps = tsc_khz && cycles ? rt_udiv64_64((u64)want * tsc_khz * 1000, cycles) : 0;
    rt_printf("VOLT-GUEST virtio_rng: bytes=%u requests=%u distinct=%u min=%u max=%u chi2x100=%llu longest_run=%u "
              "zero_buffers=%u short_reads=%u empty_reads=%u elapsed_us=%llu rate_bps=%llu\n",
              want, requests, distinct, min, max, want ? chi2x100(want) : 0, longest, zero_buffers, short_reads,
              empty_reads, elapsed_us, rate_bps);
    rt_printf("VOLT-GUEST virtio_rng: timing cycles=%llu tsc_khz=%u irqs=%u wakeups=%u status_zero=%u "
              "analysis_ms=%llu\n",
              cycles, tsc_khz, dev.irqs, wakeups, dev.irq_status_zero, tsc_khz ? rt_udiv64(t_analyse, tsc_khz) : 0);

out:
    cli();
    if (routed)
        vdev_unroute_irq(&dev);
    if (ticking)
        rt_tick_stop();
    if (fail)
        rt_printf("VOLT-GUEST virtio_rng: FAIL %s\n", fail);
    else if (!failed)                   /* (a failure in the loop printed its own FAIL line) */
        serial_puts("VOLT-GUEST virtio_rng: ok\n");
}
