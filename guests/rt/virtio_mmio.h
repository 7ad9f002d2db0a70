/* Modern (version 2) virtio-mmio transport and split virtqueues, written
 * from the virtio 1.2 spec: 4.2 (MMIO), 2.7 (split virtqueues), 3.1 (device
 * initialization).  Paging is off, so a pointer is a guest-physical address. */
#pragma once
#include "rt.h"

/* 4.2.2 register layout */
#define VIRTIO_MMIO_MAGIC            0x000
#define VIRTIO_MMIO_VERSION          0x004
#define VIRTIO_MMIO_DEVICE_ID        0x008
#define VIRTIO_MMIO_VENDOR_ID        0x00c
#define VIRTIO_MMIO_DEVICE_FEATURES  0x010
#define VIRTIO_MMIO_DEVICE_FEAT_SEL  0x014
#define VIRTIO_MMIO_DRIVER_FEATURES  0x020
#define VIRTIO_MMIO_DRIVER_FEAT_SEL  0x024
#define VIRTIO_MMIO_QUEUE_SEL        0x030
#define VIRTIO_MMIO_QUEUE_NUM_MAX    0x034
#define VIRTIO_MMIO_QUEUE_NUM        0x038
#define VIRTIO_MMIO_QUEUE_READY      0x044
#define VIRTIO_MMIO_QUEUE_NOTIFY     0x050
#define VIRTIO_MMIO_INTERRUPT_STATUS 0x060
#define VIRTIO_MMIO_INTERRUPT_ACK    0x064
#define VIRTIO_MMIO_STATUS           0x070
#define VIRTIO_MMIO_QUEUE_DESC_LO    0x080
#define VIRTIO_MMIO_QUEUE_DESC_HI    0x084
#define VIRTIO_MMIO_QUEUE_DRIVER_LO  0x090
#define VIRTIO_MMIO_QUEUE_DRIVER_HI  0x094
#define VIRTIO_MMIO_QUEUE_DEVICE_LO  0x0a0
#define VIRTIO_MMIO_QUEUE_DEVICE_HI  0x0a4
#define VIRTIO_MMIO_CONFIG_GEN       0x0fc
#define VIRTIO_MMIO_CONFIG           0x100

#define VIRTIO_MMIO_MAGIC_VALUE      0x74726976u   /* "virt" */

/* 2.1 device status bits */
#define VIRTIO_STATUS_ACKNOWLEDGE    1u
#define VIRTIO_STATUS_DRIVER         2u
#define VIRTIO_STATUS_DRIVER_OK      4u
#define VIRTIO_STATUS_FEATURES_OK    8u
#define VIRTIO_STATUS_NEEDS_RESET    64u
#define VIRTIO_STATUS_FAILED         128u

#define VIRTIO_F_VERSION_1           32

#define VIRTIO_ID_NET                1
#define VIRTIO_ID_BLOCK              2

/* 2.7.5 descriptor flags */
#define VIRTQ_DESC_F_NEXT            1
#define VIRTQ_DESC_F_WRITE           2

/* Our queues never exceed this many entries (a power of two). */
#define VQ_MAX 64

struct virtq_desc {
    u64 addr;
    u32 len;
    u16 flags;
    u16 next;
};

struct virtq_avail {
    u16 flags;
    u16 idx;
    u16 ring[VQ_MAX];
    u16 used_event;                 /* unused: we never negotiate EVENT_IDX */
};

struct virtq_used_elem {
    u32 id;
    u32 len;
};

struct virtq_used {
    u16 flags;
    u16 idx;
    struct virtq_used_elem ring[VQ_MAX];
    u16 avail_event;
};

/* The three rings of one queue in one page.  Alignment (2.7): descriptor
 * table 16, available ring 2, used ring 4.  With a queue size below VQ_MAX
 * the device simply uses the first `num` entries of each ring. */
struct virtq_mem {
    struct virtq_desc desc[VQ_MAX];
    struct virtq_avail avail __attribute__((aligned(16)));
    struct virtq_used used __attribute__((aligned(16)));
} __attribute__((aligned(4096)));

struct virtq {
    struct virtq_mem *mem;
    u16 index;                      /* queue index on the device */
    u16 num;                        /* queue size in use */
    u16 free_head;                  /* free descriptor list, linked by .next */
    u16 num_free;
    u16 avail_idx;                  /* our copy of avail.idx */
    u16 last_used;                  /* used.idx we have consumed up to */
    u16 chain_len[VQ_MAX];          /* descriptors in the chain headed here */
};

struct vdev {
    const char *name;               /* for "VOLT-GUEST <name>: ..." lines */
    u32 base, size, irq;
    u32 device_id, vendor_id;
    u64 device_features;
    u64 features;                   /* negotiated */
    u32 vector;
    volatile u32 irqs;              /* device vector deliveries */
    volatile u32 irq_status_zero;   /* deliveries where InterruptStatus read 0 */
    volatile u32 irq_config;        /* deliveries with the config-change bit */
};

/* One entry from the cmdline list `virtio_mmio.device=<size>@<base>:<irq>[:<id>]`. */
struct vmmio_slot {
    u32 base, size, irq;
};

#define VMMIO_MAX_SLOTS 32
/* Parses every virtio_mmio.device= token in cmdline order; malformed ones are
 * reported as "VOLT-GUEST <name>: bad virtio_mmio.device=..." and skipped. */
u32 vmmio_cmdline_slots(u32 start_info_paddr, const char *name, struct vmmio_slot *out, u32 max);

/* Probes the cmdline slots in order for the first modern device with this ID.
 * Prints an error line and returns 0 if there is none. */
int vdev_find(u32 start_info_paddr, u32 device_id, const char *name, struct vdev *d);

/* Reset, ACKNOWLEDGE, DRIVER, read device features, write
 * (device & (required | optional)), FEATURES_OK, confirm it.  Fails (error
 * line, FAILED status) if a required bit is missing. */
int vdev_negotiate(struct vdev *d, u64 required, u64 optional);
/* Sets up queue `index` with up to VQ_MAX entries and marks it ready. */
int vdev_queue_setup(struct vdev *d, struct virtq *q, struct virtq_mem *mem, u16 index);
void vdev_driver_ok(struct vdev *d);
void vdev_set_failed(struct vdev *d);
/* Routes the device's IRQ (IOAPIC pin = IRQ) to `vector` on apic_id; the
 * handler reads InterruptStatus, writes it to InterruptACK and EOIs. */
int vdev_route_irq(struct vdev *d, u8 vector, u32 apic_id);
void vdev_unroute_irq(struct vdev *d);

static inline u32 vdev_read(const struct vdev *d, u32 off) { return mmio_read32(d->base + off); }
static inline void vdev_write(const struct vdev *d, u32 off, u32 v) { mmio_write32(d->base + off, v); }
static inline u8 vdev_cfg8(const struct vdev *d, u32 off) { return *(volatile u8 *)(d->base + VIRTIO_MMIO_CONFIG + off); }
u64 vdev_cfg64(const struct vdev *d, u32 off);   /* two 32-bit reads under ConfigGeneration */

/* One buffer of a chain: device-readable (write=0) or device-writable (write=1). */
struct vq_buf {
    const void *addr;
    u32 len;
    u32 write;
};
/* Adds a chain and publishes it in the available ring (no notification).
 * Returns the head descriptor index, or -1 if there are not enough free descriptors. */
int vq_add(struct virtq *q, const struct vq_buf *bufs, u32 n);
void vq_kick(struct vdev *d, struct virtq *q);     /* QueueNotify <- queue index */
/* True if the device has returned a chain we have not consumed yet. */
int vq_has_used(const struct virtq *q);
/* Consumes one used element: returns its head index (descriptors freed) and
 * *len = bytes written by the device; -1 if nothing is new; -2 if the device
 * returned an id that is not the head of a chain we made available (consumed). */
int vq_pop_used(struct virtq *q, u32 *len);
