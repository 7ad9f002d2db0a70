/* virtio_blk.elf: drives the first virtio-blk device (modern virtio-mmio)
 * from the cmdline list.  Writes a deterministic pattern, flushes, reads it
 * back and compares; or only reads and verifies (blk.readonly); optionally
 * reads beyond the end (blk.outofrange).  Up to 4 requests in flight, each a
 * 3-descriptor chain; completion by interrupt, every wait bounded by LAPIC
 * timer ticks.  See README.md for the lines and the pattern formula. */
#include "rt.h"
#include "start_info.h"
#include "virtio_mmio.h"

#define VIRTIO_BLK_F_FLUSH 9

#define VIRTIO_BLK_T_IN    0
#define VIRTIO_BLK_T_OUT   1
#define VIRTIO_BLK_T_FLUSH 4

#define VIRTIO_BLK_S_OK    0

#define SECTOR            512u
#define SECTORS_PER_REQ   8u
#define MAX_INFLIGHT      4u
#define VEC_BLK           0x50
#define WAIT_TICKS        (5 * RT_TICKS_PER_SEC)   /* per wait without progress */
#define MAX_WAKEUPS       1000000u
#define MAX_MISMATCH_LINES 4u

struct blk_hdr {
    u32 type;
    u32 reserved;
    u64 sector;
};

struct req {
    u32 busy;
    u32 type;
    u64 sector;
    u32 nsec;
    u32 expect_error;                  /* blk.outofrange: a non-zero status is the point */
};

static struct virtq_mem ring;
static u8 data[MAX_INFLIGHT][SECTORS_PER_REQ * SECTOR] __attribute__((aligned(4096)));
static struct blk_hdr hdrs[MAX_INFLIGHT] __attribute__((aligned(16)));
static u8 statuses[MAX_INFLIGHT] __attribute__((aligned(16)));
static struct req reqs[MAX_INFLIGHT];
static int head_req[VQ_MAX];

static struct vdev dev;
static struct virtq vq;
static u32 max_inflight;
static u32 seed;
static u32 requests, wakeups, len_mismatches, bad_ids;
static u32 verified, mismatches, status_errors, oor_status;
static int timed_out;

/* The data pattern: byte `off` (0..511) of absolute sector `sector`. */
static u8 pattern(u32 s, u64 sector, u32 off)
{
    u32 x = s * 0x9e3779b1u ^ (u32)sector * 0x85ebca77u ^ (u32)(sector >> 32) * 0x27d4eb2fu ^ off * 0xc2b2ae3du;
    x ^= x >> 16;
    x *= 0x7feb352du;
    x ^= x >> 15;
    return (u8)x;
}

static const char *type_name(u32 t)
{
    switch (t) {
    case VIRTIO_BLK_T_IN: return "read";
    case VIRTIO_BLK_T_OUT: return "write";
    case VIRTIO_BLK_T_FLUSH: return "flush";
    default: return "?";
    }
}

static void verify(u32 r)
{
    const u8 *buf = data[r];
    for (u32 k = 0; k < reqs[r].nsec; k++) {
        u64 sector = reqs[r].sector + k;
        u32 bad = 0, first = 0;
        for (u32 i = 0; i < SECTOR; i++)
            if (buf[k * SECTOR + i] != pattern(seed, sector, i)) {
                if (!bad)
                    first = i;
                bad++;
            }
        verified++;
        if (bad) {
            if (mismatches < MAX_MISMATCH_LINES)
                rt_printf("VOLT-GUEST blk: mismatch sector=%llu bytes=%u first_offset=%u got=0x%02x want=0x%02x\n",
                          sector, bad, first, buf[k * SECTOR + first], pattern(seed, sector, first));
            mismatches++;
        }
    }
}

static void complete(u32 r, u32 len)
{
    struct req *q = &reqs[r];
    u8 st = statuses[r];
    u32 want_len = 1 + (q->type == VIRTIO_BLK_T_IN ? q->nsec * SECTOR : 0);
    requests++;
    q->busy = 0;
    if (q->expect_error) {
        oor_status = st;
        return;
    }
    if (st != VIRTIO_BLK_S_OK) {
        rt_printf("VOLT-GUEST blk: error status=%u type=%u(%s) sector=%llu sectors=%u\n", st, q->type,
                  type_name(q->type), q->sector, q->nsec);
        status_errors++;
        return;
    }
    if (len != want_len) {
        if (len_mismatches < MAX_MISMATCH_LINES)
            rt_printf("VOLT-GUEST blk: note used.len=%u expected=%u type=%s sector=%llu\n", len, want_len,
                      type_name(q->type), q->sector);
        len_mismatches++;
    }
    if (q->type == VIRTIO_BLK_T_IN)
        verify(r);
}

static int submit(u32 type, u64 sector, u32 nsec, u32 expect_error)
{
    u32 r = 0;
    while (r < MAX_INFLIGHT && reqs[r].busy)
        r++;
    if (r == MAX_INFLIGHT)
        return 0;
    reqs[r].busy = 1;
    reqs[r].type = type;
    reqs[r].sector = sector;
    reqs[r].nsec = nsec;
    reqs[r].expect_error = expect_error;
    hdrs[r].type = type;
    hdrs[r].reserved = 0;
    hdrs[r].sector = type == VIRTIO_BLK_T_FLUSH ? 0 : sector;
    statuses[r] = 0xff;                 /* the device must overwrite it */
    if (type == VIRTIO_BLK_T_OUT) {
        for (u32 k = 0; k < nsec; k++)
            for (u32 i = 0; i < SECTOR; i++)
                data[r][k * SECTOR + i] = pattern(seed, sector + k, i);
    } else if (type == VIRTIO_BLK_T_IN) {
        memset(data[r], 0xee, nsec * SECTOR);
    }

    struct vq_buf bufs[3];
    u32 n = 0;
    bufs[n++] = (struct vq_buf){ &hdrs[r], sizeof(hdrs[r]), 0 };
    if (type != VIRTIO_BLK_T_FLUSH)
        bufs[n++] = (struct vq_buf){ data[r], nsec * SECTOR, type == VIRTIO_BLK_T_IN };
    bufs[n++] = (struct vq_buf){ &statuses[r], 1, 1 };
    int head = vq_add(&vq, bufs, n);
    if (head < 0) {
        reqs[r].busy = 0;
        return 0;
    }
    head_req[head] = (int)r;
    return 1;
}

static u32 inflight(void)
{
    u32 n = 0;
    for (u32 r = 0; r < MAX_INFLIGHT; r++)
        n += reqs[r].busy;
    return n;
}

/* Waits (interrupts, bounded) until at least one request completes, then
 * consumes every used element.  Returns 0 on timeout. */
static int wait_completions(const char *what)
{
    u32 start = rt_ticks;
    while (!vq_has_used(&vq)) {
        if (rt_ticks - start >= WAIT_TICKS || wakeups >= MAX_WAKEUPS) {
            rt_printf("VOLT-GUEST blk: error timeout waiting for %s inflight=%u ticks=%u irqs=%u\n", what,
                      inflight(), rt_ticks - start, dev.irqs);
            timed_out = 1;
            vdev_set_failed(&dev);
            return 0;
        }
        wakeups++;
        rt_wait_irq();
    }
    u32 len;
    int head;
    while ((head = vq_pop_used(&vq, &len)) != -1) {
        if (head < 0) {
            bad_ids++;
            rt_printf("VOLT-GUEST blk: error device returned an unknown descriptor id\n");
            continue;
        }
        complete((u32)head_req[head], len);
    }
    return 1;
}

/* Runs `count` sectors from `start` as requests of up to SECTORS_PER_REQ,
 * keeping up to max_inflight outstanding and notifying once per batch. */
static int run_range(u32 type, u64 start, u64 count)
{
    u64 next = start, end = start + count;
    while (next < end || inflight()) {
        u32 added = 0;
        while (next < end && inflight() < max_inflight) {
            u32 nsec = end - next < SECTORS_PER_REQ ? (u32)(end - next) : SECTORS_PER_REQ;
            if (!submit(type, next, nsec, 0))
                break;
            next += nsec;
            added++;
        }
        if (added)
            vq_kick(&dev, &vq);
        if (!wait_completions(type_name(type)))
            return 0;
    }
    return 1;
}

/* One request on its own, waited for.  Returns 0 on timeout. */
static int run_one(u32 type, u64 sector, u32 nsec, u32 expect_error)
{
    if (!submit(type, sector, nsec, expect_error))
        return 0;
    vq_kick(&dev, &vq);
    while (inflight())
        if (!wait_completions(type_name(type)))
            return 0;
    return 1;
}

static u64 cmdline_num(u32 si, const char *key, u64 def)
{
    u64 v;
    int r = rt_cmdline_u64(si, key, &v);
    if (r < 0)
        rt_printf("VOLT-GUEST blk: bad %s= value, using %llu\n", key, def);
    return r > 0 ? v : def;
}

void guest_main(u32 si)
{
    seed = (u32)cmdline_num(si, "blk.seed", 1);
    u64 nsectors = cmdline_num(si, "blk.sectors", 64);
    u64 start = cmdline_num(si, "blk.start", 0);
    int readonly = rt_cmdline_word(si, "blk.readonly");
    int outofrange = rt_cmdline_word(si, "blk.outofrange");
    int reset_again = rt_cmdline_word(si, "blk.reset");

    if (!vdev_find(si, VIRTIO_ID_BLOCK, "blk", &dev))
        goto out;
    u32 apic_id = rt_tick_start();
    if (!vdev_negotiate(&dev, 1ull << VIRTIO_F_VERSION_1, 1ull << VIRTIO_BLK_F_FLUSH))
        goto out;
    if (!vdev_queue_setup(&dev, &vq, &ring, 0))
        goto out;
    if (!vdev_route_irq(&dev, VEC_BLK, apic_id)) {
        vdev_set_failed(&dev);
        goto out;
    }
    vdev_driver_ok(&dev);
    max_inflight = vq.num / 3 < MAX_INFLIGHT ? vq.num / 3 : MAX_INFLIGHT;

    u64 capacity = vdev_cfg64(&dev, 0);
    rt_printf("VOLT-GUEST blk: device base=0x%x irq=%u vendor=0x%x queue_size=%u device_features=0x%llx\n",
              dev.base, dev.irq, dev.vendor_id, vq.num, dev.device_features);
    rt_printf("VOLT-GUEST blk: capacity=%llu features=0x%llx\n", capacity, dev.features);

    if (max_inflight == 0) {
        rt_printf("VOLT-GUEST blk: error queue size %u too small for 3-descriptor requests\n", vq.num);
        vdev_set_failed(&dev);
    } else if (nsectors && (start >= capacity || nsectors > capacity - start)) {
        rt_printf("VOLT-GUEST blk: error range start=%llu sectors=%llu beyond capacity=%llu\n", start, nsectors,
                  capacity);
    } else if (readonly) {
        run_range(VIRTIO_BLK_T_IN, start, nsectors);
        rt_printf("VOLT-GUEST blk: readonly verified=%u mismatches=%u\n", verified, mismatches);
    } else {
        u32 errors_before = status_errors;
        int ok = run_range(VIRTIO_BLK_T_OUT, start, nsectors);
        u64 wrote = ok && status_errors == errors_before ? nsectors : 0;
        const char *flushed = "unsupported";
        if (ok && (dev.features & (1ull << VIRTIO_BLK_F_FLUSH))) {
            u32 e = status_errors;
            ok = run_one(VIRTIO_BLK_T_FLUSH, 0, 0, 0);
            flushed = ok && status_errors == e ? "yes" : "no";
        }
        if (ok)
            run_range(VIRTIO_BLK_T_IN, start, nsectors);
        rt_printf("VOLT-GUEST blk: wrote=%llu flushed=%s verified=%u mismatches=%u\n", wrote, flushed, verified,
                  mismatches);
    }

    if (reset_again && !timed_out && max_inflight && nsectors) {
        /* Reset the device (status 0) and bring it up again from scratch: the VMM must
         * stop the backend's rings and hand over fresh ones, with the data intact. */
        if (vdev_negotiate(&dev, 1ull << VIRTIO_F_VERSION_1, 1ull << VIRTIO_BLK_F_FLUSH) &&
            vdev_queue_setup(&dev, &vq, &ring, 0)) {
            vdev_driver_ok(&dev);
            verified = mismatches = 0;
            run_range(VIRTIO_BLK_T_IN, start, nsectors);
            rt_printf("VOLT-GUEST blk: after-reset verified=%u mismatches=%u\n", verified, mismatches);
        }
    }

    if (outofrange && !timed_out && max_inflight) {
        if (run_one(VIRTIO_BLK_T_IN, capacity, 1, 1))
            rt_printf("VOLT-GUEST blk: outofrange status=%u\n", oor_status);
    }

    rt_printf("VOLT-GUEST blk: irq_detail status_zero=%u config=%u wakeups=%u len_mismatches=%u bad_ids=%u\n",
              dev.irq_status_zero, dev.irq_config, wakeups, len_mismatches, bad_ids);
    rt_printf("VOLT-GUEST blk: irqs=%u requests=%u\n", dev.irqs, requests);
    cli();
    vdev_unroute_irq(&dev);
    rt_tick_stop();
out:
    serial_puts("VOLT-GUEST blk: done\n");
}
