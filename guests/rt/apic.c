/* 8259 PIC, local APIC and IOAPIC helpers (xAPIC MMIO mode, paging off). */
#include "rt.h"

#define LAPIC_ID        0x020
#define LAPIC_VER       0x030
#define LAPIC_TPR       0x080
#define LAPIC_EOI       0x0b0
#define LAPIC_SVR       0x0f0
#define LAPIC_ESR       0x280
#define LAPIC_LVT_TIMER 0x320
#define LAPIC_LVT_LINT0 0x350
#define LAPIC_LVT_LINT1 0x360
#define LAPIC_LVT_ERROR 0x370
#define LAPIC_TIMER_ICR 0x380
#define LAPIC_TIMER_DCR 0x3e0
#define LVT_MASKED      (1u << 16)
#define LVT_PERIODIC    (1u << 17)

static inline u32 lapic_read(u32 reg) { return mmio_read32(LAPIC_BASE + reg); }
static inline void lapic_write(u32 reg, u32 v) { mmio_write32(LAPIC_BASE + reg, v); }

void pic_init_masked(void)
{
    /* ICW1..ICW4 on both chips: edge, cascade, 8086 mode, vectors 0x20/0x28,
     * then OCW1 masks every line.  Nothing should come through the PICs;
     * remapping keeps a stray one away from the exception vectors. */
    outb(0x20, 0x11);
    outb(0xa0, 0x11);
    outb(0x21, 0x20);
    outb(0xa1, 0x28);
    outb(0x21, 0x04);
    outb(0xa1, 0x02);
    outb(0x21, 0x01);
    outb(0xa1, 0x01);
    outb(0x21, 0xff);
    outb(0xa1, 0xff);
}

u32 lapic_enable(u8 spurious_vector)
{
    lapic_write(LAPIC_TPR, 0);
    lapic_write(LAPIC_LVT_LINT0, LVT_MASKED);   /* ExtINT from the 8259s: off */
    lapic_write(LAPIC_LVT_LINT1, LVT_MASKED);
    lapic_write(LAPIC_LVT_ERROR, LVT_MASKED);
    lapic_write(LAPIC_LVT_TIMER, LVT_MASKED);
    lapic_write(LAPIC_SVR, 0x100u | spurious_vector);   /* bit 8: APIC software enable */
    lapic_write(LAPIC_ESR, 0);
    return lapic_read(LAPIC_ID) >> 24;
}

void lapic_eoi(void)
{
    lapic_write(LAPIC_EOI, 0);
}

void lapic_timer_periodic(u8 vector, u32 initial_count, u32 divide_code)
{
    lapic_write(LAPIC_TIMER_DCR, divide_code);
    lapic_write(LAPIC_LVT_TIMER, LVT_PERIODIC | vector);
    lapic_write(LAPIC_TIMER_ICR, initial_count);
}

void lapic_timer_stop(void)
{
    lapic_write(LAPIC_LVT_TIMER, LVT_MASKED);
    lapic_write(LAPIC_TIMER_ICR, 0);
}

u32 ioapic_read(u32 reg)
{
    mmio_write32(IOAPIC_BASE + 0x00, reg);      /* IOREGSEL */
    return mmio_read32(IOAPIC_BASE + 0x10);     /* IOWIN */
}

void ioapic_write(u32 reg, u32 v)
{
    mmio_write32(IOAPIC_BASE + 0x00, reg);
    mmio_write32(IOAPIC_BASE + 0x10, v);
}

void ioapic_route(u32 pin, u8 vector, u32 apic_id)
{
    /* Mask first, set the destination, then unmask with the final low word. */
    ioapic_write(0x10 + 2 * pin, LVT_MASKED);
    ioapic_write(0x10 + 2 * pin + 1, apic_id << 24);
    ioapic_write(0x10 + 2 * pin, vector);       /* fixed, physical, active-high, edge, unmasked */
}

void ioapic_mask(u32 pin)
{
    ioapic_write(0x10 + 2 * pin, LVT_MASKED);
}
