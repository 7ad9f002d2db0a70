/* Modern virtio-mmio transport and split virtqueues (see virtio_mmio.h). */
#include "virtio_mmio.h"
#include "start_info.h"

/* ---- the cmdline device list ---- */

/* "<size>@<base>:<irq>[:<id>]"; size is a number with an optional K/M/G suffix. */
static int parse_slot(const char *s, usize len, struct vmmio_slot *out)
{
    u64 size, base, irq;
    usize i = rt_parse_u64(s, len, &size);
    if (!i)
        return 0;
    if (i < len && (s[i] == 'K' || s[i] == 'k')) {
        size <<= 10;
        i++;
    } else if (i < len && (s[i] == 'M' || s[i] == 'm')) {
        size <<= 20;
        i++;
    } else if (i < len && (s[i] == 'G' || s[i] == 'g')) {
        size <<= 30;
        i++;
    }
    if (i >= len || s[i] != '@')
        return 0;
    i++;
    usize n = rt_parse_u64(s + i, len - i, &base);
    if (!n)
        return 0;
    i += n;
    if (i >= len || s[i] != ':')
        return 0;
    i++;
    n = rt_parse_u64(s + i, len - i, &irq);
    if (!n)
        return 0;
    i += n;
    if (i < len && s[i] != ':')                 /* an optional ":<id>" may follow */
        return 0;
    if (size < 0x100 || size > 0x100000 || base + size > 0x100000000ull || irq > 255)
        return 0;
    out->base = (u32)base;
    out->size = (u32)size;
    out->irq = (u32)irq;
    return 1;
}

static void put_token(const char *s, usize len)
{
    for (usize i = 0; i < len && i < 80; i++)
        serial_putc((s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?');
}

u32 vmmio_cmdline_slots(u32 start_info_paddr, const char *name, struct vmmio_slot *out, u32 max)
{
    static const char key[] = "virtio_mmio.device=";
    const usize kl = sizeof(key) - 1;
    u32 count = 0;
    usize n;
    const char *s = rt_cmdline(start_info_paddr);
    for (const char *t = rt_cmdline_next(s, &n); t; t = rt_cmdline_next(t + n, &n)) {
        if (n < kl || rt_memcmp(t, key, kl) != 0)
            continue;
        struct vmmio_slot slot;
        if (!parse_slot(t + kl, n - kl, &slot)) {
            rt_printf("VOLT-GUEST %s: bad ", name);
            put_token(t, n);
            serial_putc('\n');
            continue;
        }
        if (count < max)
            out[count++] = slot;
    }
    return count;
}

int vdev_find(u32 start_info_paddr, u32 device_id, const char *name, struct vdev *d)
{
    struct vmmio_slot slots[VMMIO_MAX_SLOTS];
    u32 n = vmmio_cmdline_slots(start_info_paddr, name, slots, VMMIO_MAX_SLOTS);
    if (n == 0) {
        rt_printf("VOLT-GUEST %s: error no virtio_mmio.device= on the cmdline\n", name);
        return 0;
    }
    for (u32 i = 0; i < n; i++) {
        u32 base = slots[i].base;
        u32 magic = mmio_read32(base + VIRTIO_MMIO_MAGIC);
        u32 version = mmio_read32(base + VIRTIO_MMIO_VERSION);
        u32 id = mmio_read32(base + VIRTIO_MMIO_DEVICE_ID);
        if (magic != VIRTIO_MMIO_MAGIC_VALUE || id != device_id)
            continue;
        if (version != 2) {
            rt_printf("VOLT-GUEST %s: error device at 0x%x has version %u (need 2, modern)\n", name, base, version);
            continue;
        }
        memset(d, 0, sizeof(*d));
        d->name = name;
        d->base = base;
        d->size = slots[i].size;
        d->irq = slots[i].irq;
        d->device_id = id;
        d->vendor_id = mmio_read32(base + VIRTIO_MMIO_VENDOR_ID);
        return 1;
    }
    rt_printf("VOLT-GUEST %s: error no virtio-mmio device with id %u among %u on the cmdline\n", name, device_id, n);
    return 0;
}

/* ---- initialization (3.1.1, 4.2.3.1) ---- */

void vdev_set_failed(struct vdev *d)
{
    vdev_write(d, VIRTIO_MMIO_STATUS, vdev_read(d, VIRTIO_MMIO_STATUS) | VIRTIO_STATUS_FAILED);
}

int vdev_negotiate(struct vdev *d, u64 required, u64 optional)
{
    vdev_write(d, VIRTIO_MMIO_STATUS, 0);
    u32 spins = 0;
    while (vdev_read(d, VIRTIO_MMIO_STATUS) != 0) {
        if (++spins > 1000000) {
            rt_printf("VOLT-GUEST %s: error reset did not complete (status=0x%x)\n", d->name,
                      vdev_read(d, VIRTIO_MMIO_STATUS));
            vdev_set_failed(d);
            return 0;
        }
        cpu_relax();
    }
    u32 status = VIRTIO_STATUS_ACKNOWLEDGE;
    vdev_write(d, VIRTIO_MMIO_STATUS, status);
    status |= VIRTIO_STATUS_DRIVER;
    vdev_write(d, VIRTIO_MMIO_STATUS, status);

    vdev_write(d, VIRTIO_MMIO_DEVICE_FEAT_SEL, 0);
    u64 lo = vdev_read(d, VIRTIO_MMIO_DEVICE_FEATURES);
    vdev_write(d, VIRTIO_MMIO_DEVICE_FEAT_SEL, 1);
    u64 hi = vdev_read(d, VIRTIO_MMIO_DEVICE_FEATURES);
    d->device_features = (hi << 32) | lo;
    if ((d->device_features & required) != required) {
        rt_printf("VOLT-GUEST %s: error device features 0x%llx lack required 0x%llx\n", d->name,
                  d->device_features, required & ~d->device_features);
        vdev_set_failed(d);
        return 0;
    }
    d->features = d->device_features & (required | optional);
    vdev_write(d, VIRTIO_MMIO_DRIVER_FEAT_SEL, 0);
    vdev_write(d, VIRTIO_MMIO_DRIVER_FEATURES, (u32)d->features);
    vdev_write(d, VIRTIO_MMIO_DRIVER_FEAT_SEL, 1);
    vdev_write(d, VIRTIO_MMIO_DRIVER_FEATURES, (u32)(d->features >> 32));

    status |= VIRTIO_STATUS_FEATURES_OK;
    vdev_write(d, VIRTIO_MMIO_STATUS, status);
    u32 back = vdev_read(d, VIRTIO_MMIO_STATUS);
    if (!(back & VIRTIO_STATUS_FEATURES_OK)) {
        rt_printf("VOLT-GUEST %s: error device did not accept features 0x%llx (status=0x%x)\n", d->name,
                  d->features, back);
        vdev_set_failed(d);
        return 0;
    }
    return 1;
}

int vdev_queue_setup(struct vdev *d, struct virtq *q, struct virtq_mem *mem, u16 index)
{
    vdev_write(d, VIRTIO_MMIO_QUEUE_SEL, index);
    if (vdev_read(d, VIRTIO_MMIO_QUEUE_READY) != 0) {
        rt_printf("VOLT-GUEST %s: error queue %u already ready after reset\n", d->name, index);
        vdev_set_failed(d);
        return 0;
    }
    u32 max = vdev_read(d, VIRTIO_MMIO_QUEUE_NUM_MAX);
    if (max == 0) {
        rt_printf("VOLT-GUEST %s: error queue %u not available (QueueNumMax=0)\n", d->name, index);
        vdev_set_failed(d);
        return 0;
    }
    u32 num = VQ_MAX;
    while (num > max)
        num >>= 1;

    memset(mem, 0, sizeof(*mem));
    memset(q, 0, sizeof(*q));
    q->mem = mem;
    q->index = index;
    q->num = (u16)num;
    q->num_free = (u16)num;
    for (u32 i = 0; i < num; i++)
        mem->desc[i].next = (u16)(i + 1 < num ? i + 1 : 0);

    vdev_write(d, VIRTIO_MMIO_QUEUE_NUM, num);
    vdev_write(d, VIRTIO_MMIO_QUEUE_DESC_LO, (u32)mem->desc);
    vdev_write(d, VIRTIO_MMIO_QUEUE_DESC_HI, 0);
    vdev_write(d, VIRTIO_MMIO_QUEUE_DRIVER_LO, (u32)&mem->avail);
    vdev_write(d, VIRTIO_MMIO_QUEUE_DRIVER_HI, 0);
    vdev_write(d, VIRTIO_MMIO_QUEUE_DEVICE_LO, (u32)&mem->used);
    vdev_write(d, VIRTIO_MMIO_QUEUE_DEVICE_HI, 0);
    rt_mb();
    vdev_write(d, VIRTIO_MMIO_QUEUE_READY, 1);
    return 1;
}

void vdev_driver_ok(struct vdev *d)
{
    rt_mb();
    vdev_write(d, VIRTIO_MMIO_STATUS, vdev_read(d, VIRTIO_MMIO_STATUS) | VIRTIO_STATUS_DRIVER_OK);
}

u64 vdev_cfg64(const struct vdev *d, u32 off)
{
    u32 lo = 0, hi = 0;
    for (u32 tries = 0; tries < 100; tries++) {
        u32 gen = vdev_read(d, VIRTIO_MMIO_CONFIG_GEN);
        lo = vdev_read(d, VIRTIO_MMIO_CONFIG + off);
        hi = vdev_read(d, VIRTIO_MMIO_CONFIG + off + 4);
        if (vdev_read(d, VIRTIO_MMIO_CONFIG_GEN) == gen)
            break;
    }
    return ((u64)hi << 32) | lo;
}

/* ---- interrupts ---- */

static struct vdev *vector_dev[256];

static void vdev_isr(struct rt_frame *f)
{
    struct vdev *d = vector_dev[f->vector & 0xff];
    if (d) {
        d->irqs++;
        /* With irqfd delivery the status may say "used buffer" when nothing
         * is new, or nothing at all: the waiter checks the used ring anyway. */
        u32 st = vdev_read(d, VIRTIO_MMIO_INTERRUPT_STATUS);
        if (st == 0)
            d->irq_status_zero++;
        if (st & 2)
            d->irq_config++;
        if (st)
            vdev_write(d, VIRTIO_MMIO_INTERRUPT_ACK, st);
    }
    lapic_eoi();
}

int vdev_route_irq(struct vdev *d, u8 vector, u32 apic_id)
{
    u32 pins = ioapic_pin_count();
    if (d->irq >= pins) {
        rt_printf("VOLT-GUEST %s: error irq %u beyond the IOAPIC's %u pins\n", d->name, d->irq, pins);
        return 0;
    }
    d->vector = vector;
    vector_dev[vector] = d;
    idt_set_handler(vector, vdev_isr);
    ioapic_route(d->irq, vector, apic_id);
    return 1;
}

void vdev_unroute_irq(struct vdev *d)
{
    ioapic_mask(d->irq);
}

/* ---- split virtqueue (2.7) ---- */

int vq_add(struct virtq *q, const struct vq_buf *bufs, u32 n)
{
    if (n == 0 || n > q->num_free)
        return -1;
    volatile struct virtq_desc *desc = q->mem->desc;
    u16 head = q->free_head, i = head, last = head;
    for (u32 k = 0; k < n; k++) {
        desc[i].addr = (u32)bufs[k].addr;
        desc[i].len = bufs[k].len;
        desc[i].flags = (u16)((bufs[k].write ? VIRTQ_DESC_F_WRITE : 0) | (k + 1 < n ? VIRTQ_DESC_F_NEXT : 0));
        last = i;
        i = desc[i].next;                   /* free-list link doubles as the chain link */
    }
    q->free_head = desc[last].next;
    q->num_free = (u16)(q->num_free - n);
    q->chain_len[head] = (u16)n;

    volatile struct virtq_avail *avail = &q->mem->avail;
    avail->ring[q->avail_idx % q->num] = head;
    rt_barrier();                           /* ring entry before idx (x86 keeps store order) */
    q->avail_idx++;
    avail->idx = q->avail_idx;
    return head;
}

void vq_kick(struct vdev *d, struct virtq *q)
{
    rt_mb();                                /* avail.idx visible before the notify */
    vdev_write(d, VIRTIO_MMIO_QUEUE_NOTIFY, q->index);
}

int vq_has_used(const struct virtq *q)
{
    return ((volatile struct virtq_used *)&q->mem->used)->idx != q->last_used;
}

int vq_pop_used(struct virtq *q, u32 *len)
{
    volatile struct virtq_used *used = &q->mem->used;
    if (used->idx == q->last_used)
        return -1;
    rt_barrier();                           /* idx before the element (x86 keeps load order) */
    u32 id = used->ring[q->last_used % q->num].id;
    u32 l = used->ring[q->last_used % q->num].len;
    q->last_used++;
    if (id >= q->num || q->chain_len[id] == 0)
        return -2;
    volatile struct virtq_desc *desc = q->mem->desc;
    u16 last = (u16)id;
    for (u32 k = 1; k < q->chain_len[id]; k++)
        last = desc[last].next;
    desc[last].next = q->free_head;
    q->free_head = (u16)id;
    q->num_free = (u16)(q->num_free + q->chain_len[id]);
    q->chain_len[id] = 0;
    *len = l;
    return (int)id;
}
