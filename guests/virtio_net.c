/* virtio_net.elf: drives the first virtio-net device (modern virtio-mmio)
 * from the cmdline list.  RX queue 0 gets RX_BUFS single-descriptor buffers
 * (12-byte virtio_net_hdr_v1 + 1514), TX queue 1 sends net.count broadcast
 * frames with ethertype 0x88b5 as 2-descriptor chains (header, frame), then
 * up to net.expect frames are received within ~5 s.  Completion by
 * interrupt; every wait bounded by LAPIC timer ticks.  Lines: README.md. */
#include "rt.h"
#include "start_info.h"
#include "virtio_mmio.h"

#define VIRTIO_NET_F_MAC   5

#define NET_HDR_LEN        12u          /* virtio_net_hdr_v1 (VERSION_1, no MRG_RXBUF) */
#define ETH_MAX            1514u
#define RX_BUF_LEN         (NET_HDR_LEN + ETH_MAX)   /* 1526 */
#define RX_BUFS            16u
#define TX_SLOTS           8u
#define FRAME_LEN          60u          /* Ethernet minimum without FCS: 14 header + 46 payload */
#define ETHERTYPE_VOLT     0x88b5u
#define RX_QUEUE           0
#define TX_QUEUE           1
#define VEC_NET            0x51
#define TX_WAIT_TICKS      (5 * RT_TICKS_PER_SEC)
#define RX_WAIT_TICKS      (5 * RT_TICKS_PER_SEC)
#define MAX_WAKEUPS        1000000u
#define MAX_COUNT          10000u

static struct virtq_mem rx_ring, tx_ring;
static u8 rx_bufs[RX_BUFS][1536] __attribute__((aligned(64)));
static u8 tx_hdrs[TX_SLOTS][16] __attribute__((aligned(16)));
static u8 tx_frames[TX_SLOTS][64] __attribute__((aligned(64)));
static int tx_head_slot[VQ_MAX];
static int rx_head_buf[VQ_MAX];
static u32 tx_busy[TX_SLOTS];

static struct vdev dev;
static struct virtq rxq, txq;
static u8 mac[6];
static u32 wakeups, bad_ids, tx_len_nonzero;

static int post_rx(u32 b)
{
    struct vq_buf buf = { rx_bufs[b], RX_BUF_LEN, 1 };
    int head = vq_add(&rxq, &buf, 1);
    if (head < 0)
        return 0;
    rx_head_buf[head] = (int)b;
    return 1;
}

/* Interrupt-driven wait for a used element on q; 0 on timeout. */
static int wait_used(struct virtq *q, u32 start, u32 limit)
{
    while (!vq_has_used(q)) {
        if (rt_ticks - start >= limit || wakeups >= MAX_WAKEUPS)
            return 0;
        wakeups++;
        rt_wait_irq();
    }
    return 1;
}

static u32 reap_tx(void)
{
    u32 n = 0, len;
    int head;
    while ((head = vq_pop_used(&txq, &len)) != -1) {
        if (head < 0) {
            bad_ids++;
            rt_printf("VOLT-GUEST net: error device returned an unknown tx descriptor id\n");
            continue;
        }
        if (len != 0)                   /* TX buffers are all device-readable */
            tx_len_nonzero++;
        tx_busy[tx_head_slot[head]] = 0;
        n++;
    }
    return n;
}

static void build_frame(u8 *f, u32 i)
{
    memset(f, 0, FRAME_LEN);
    memset(f, 0xff, 6);                 /* broadcast */
    memcpy(f + 6, mac, 6);
    f[12] = (u8)(ETHERTYPE_VOLT >> 8);
    f[13] = (u8)ETHERTYPE_VOLT;
    /* payload "VOLT-NET-TX <i>", zero padded to the 60-byte frame */
    static const char prefix[] = "VOLT-NET-TX ";
    char *p = (char *)f + 14;
    memcpy(p, prefix, sizeof(prefix) - 1);
    p += sizeof(prefix) - 1;
    char digits[12];
    u32 n = 0;
    do {
        digits[n++] = (char)('0' + i % 10);
        i /= 10;
    } while (i);
    while (n)
        *p++ = digits[--n];
}

static u64 cmdline_num(u32 si, const char *key, u64 def)
{
    u64 v;
    int r = rt_cmdline_u64(si, key, &v);
    if (r < 0)
        rt_printf("VOLT-GUEST net: bad %s= value, using %llu\n", key, def);
    return r > 0 ? v : def;
}

/* Prints "rx <len> <payload text>" for a VOLT-NET-RX frame; returns 1 if it was one. */
static int handle_rx(const u8 *buf, u32 used_len)
{
    if (used_len < NET_HDR_LEN + 14 || used_len > RX_BUF_LEN)
        return 0;
    const u8 *f = buf + NET_HDR_LEN;
    u32 flen = used_len - NET_HDR_LEN;
    if (((u32)f[12] << 8 | f[13]) != ETHERTYPE_VOLT)
        return 0;
    static const char want[] = "VOLT-NET-RX";
    if (flen < 14 + sizeof(want) - 1 || rt_memcmp(f + 14, want, sizeof(want) - 1) != 0)
        return 0;
    rt_printf("VOLT-GUEST net: rx %u ", flen);
    for (u32 i = 14; i < flen && i < 14 + 200 && f[i]; i++)
        serial_putc((f[i] >= 0x20 && f[i] < 0x7f) ? (char)f[i] : '?');
    serial_putc('\n');
    return 1;
}

void guest_main(u32 si)
{
    u64 count = cmdline_num(si, "net.count", 4);
    u64 expect = cmdline_num(si, "net.expect", 0);
    if (count > MAX_COUNT)
        count = MAX_COUNT;

    if (!vdev_find(si, VIRTIO_ID_NET, "net", &dev))
        goto out;
    u32 apic_id = rt_tick_start();
    if (!vdev_negotiate(&dev, 1ull << VIRTIO_F_VERSION_1, 1ull << VIRTIO_NET_F_MAC))
        goto out;
    if (!vdev_queue_setup(&dev, &rxq, &rx_ring, RX_QUEUE) || !vdev_queue_setup(&dev, &txq, &tx_ring, TX_QUEUE))
        goto out;
    if (txq.num < 2) {
        rt_printf("VOLT-GUEST net: error tx queue size %u too small for 2-descriptor chains\n", txq.num);
        vdev_set_failed(&dev);
        goto out;
    }
    if (!vdev_route_irq(&dev, VEC_NET, apic_id)) {
        vdev_set_failed(&dev);
        goto out;
    }
    vdev_driver_ok(&dev);

    /* RX buffers go in after DRIVER_OK, then one notification. */
    u32 nrx = rxq.num < RX_BUFS ? rxq.num : RX_BUFS;
    for (u32 b = 0; b < nrx; b++)
        post_rx(b);
    vq_kick(&dev, &rxq);

    int have_mac = (dev.features >> VIRTIO_NET_F_MAC) & 1;
    if (have_mac) {
        for (u32 tries = 0; tries < 100; tries++) {
            u32 gen = vdev_read(&dev, VIRTIO_MMIO_CONFIG_GEN);
            for (u32 i = 0; i < 6; i++)
                mac[i] = vdev_cfg8(&dev, i);
            if (vdev_read(&dev, VIRTIO_MMIO_CONFIG_GEN) == gen)
                break;
        }
    } else {
        static const u8 fallback[6] = { 0x02, 0, 0, 0, 0, 0x01 };   /* locally administered */
        memcpy(mac, fallback, 6);
    }
    rt_printf("VOLT-GUEST net: device base=0x%x irq=%u vendor=0x%x rx_queue_size=%u tx_queue_size=%u "
              "device_features=0x%llx features=0x%llx\n",
              dev.base, dev.irq, dev.vendor_id, rxq.num, txq.num, dev.device_features, dev.features);
    if (!have_mac)
        rt_printf("VOLT-GUEST net: no MAC feature, using a generated address\n");
    rt_printf("VOLT-GUEST net: mac=%02x:%02x:%02x:%02x:%02x:%02x\n", mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]);

    /* TX: keep up to slots chains in flight, one notification per batch. */
    u32 slots = txq.num / 2 < TX_SLOTS ? txq.num / 2 : TX_SLOTS;
    u32 queued = 0, sent = 0;
    int tx_timeout = 0;
    u32 start = rt_ticks;
    while (sent < count) {
        u32 added = 0;
        for (u32 s = 0; s < slots && queued < count; s++) {
            if (tx_busy[s])
                continue;
            memset(tx_hdrs[s], 0, NET_HDR_LEN);
            build_frame(tx_frames[s], queued);
            struct vq_buf bufs[2] = { { tx_hdrs[s], NET_HDR_LEN, 0 }, { tx_frames[s], FRAME_LEN, 0 } };
            int head = vq_add(&txq, bufs, 2);
            if (head < 0)
                break;
            tx_head_slot[head] = (int)s;
            tx_busy[s] = 1;
            queued++;
            added++;
        }
        if (added)
            vq_kick(&dev, &txq);
        if (!wait_used(&txq, start, TX_WAIT_TICKS)) {
            tx_timeout = 1;
            break;
        }
        u32 done = reap_tx();
        if (done)
            start = rt_ticks;            /* the limit is per wait without progress */
        sent += done;
    }
    rt_printf("VOLT-GUEST net: sent=%u\n", sent);
    if (tx_timeout) {
        rt_printf("VOLT-GUEST net: error timeout waiting for tx sent=%u of %llu irqs=%u\n", sent, count, dev.irqs);
        vdev_set_failed(&dev);
    }

    /* RX: up to `expect` VOLT-NET-RX frames within RX_WAIT_TICKS. */
    u32 received = 0, other = 0;
    if (expect && !tx_timeout) {
        start = rt_ticks;
        while (received < expect) {
            if (!wait_used(&rxq, start, RX_WAIT_TICKS))
                break;
            u32 len, reposted = 0;
            int head;
            while ((head = vq_pop_used(&rxq, &len)) != -1) {
                if (head < 0) {
                    bad_ids++;
                    rt_printf("VOLT-GUEST net: error device returned an unknown rx descriptor id\n");
                    continue;
                }
                u32 b = (u32)rx_head_buf[head];
                if (received < expect && handle_rx(rx_bufs[b], len))
                    received++;
                else
                    other++;
                reposted += post_rx(b);
            }
            if (reposted)
                vq_kick(&dev, &rxq);
        }
        if (received < expect)
            rt_printf("VOLT-GUEST net: rx timeout received=%u expected=%llu\n", received, expect);
        rt_printf("VOLT-GUEST net: received=%u other=%u\n", received, other);
    }

    rt_printf("VOLT-GUEST net: irq_detail status_zero=%u config=%u wakeups=%u tx_len_nonzero=%u bad_ids=%u\n",
              dev.irq_status_zero, dev.irq_config, wakeups, tx_len_nonzero, bad_ids);
    rt_printf("VOLT-GUEST net: irqs=%u\n", dev.irqs);
    cli();
    vdev_unroute_irq(&dev);
    rt_tick_stop();
out:
    serial_puts("VOLT-GUEST net: done\n");
}
