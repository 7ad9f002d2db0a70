/* uart_irq.elf: drives COM1 through its interrupt (IRQ 4 -> IOAPIC pin 4 ->
 * LAPIC, 8259s remapped and fully masked).  Transmits one line by feeding THR
 * from the THRE interrupt, then reads one input line from RX interrupts with
 * a ~5 s deadline.  The LAPIC timer (periodic, 10 ms nominal) wakes HLT so
 * no wait can hang. */
#include "rt.h"

#define UART_RBR 0
#define UART_THR 0
#define UART_IER 1
#define UART_IIR 2
#define UART_LSR 5
#define UART_MSR 6
#define IER_RDA  0x01
#define IER_THRE 0x02

#define VEC_TIMER    0x40
#define VEC_UART     0x41
#define VEC_SPURIOUS 0xff
#define UART_PIN     4

/* LAPIC timer: divide by 16 (DCR code 3).  KVM's in-kernel LAPIC and QEMU's
 * both count at 1 GHz before the divider, so 625000 counts = 10 ms. */
#define TIMER_DCR_DIV16 0x3
#define TIMER_COUNT     625000u
#define TICKS_PER_SEC   100u
#define TX_TIMEOUT_TICKS (2 * TICKS_PER_SEC)
#define RX_TIMEOUT_TICKS (5 * TICKS_PER_SEC)
#define RX_TIMEOUT_SECS  5u
#define MAX_WAKEUPS      200000u

static const char tx_msg[] = "VOLT-GUEST uart-irq: tx via interrupts\n";
static volatile u32 tx_pos;
static volatile u32 tx_done;
static volatile u32 thre_irqs, rx_irqs, other_uart_irqs, uart_vectors;
static volatile u32 ticks;

#define RX_RING 256
static volatile u8 rx_ring[RX_RING];
static volatile u32 rx_head, rx_tail;   /* head written by the ISR, tail by the reader */
static volatile u32 rx_dropped;

static void timer_isr(struct rt_frame *f)
{
    (void)f;
    ticks++;
    lapic_eoi();
}

static void spurious_isr(struct rt_frame *f)
{
    (void)f;                            /* LAPIC spurious: no EOI */
}

static void uart_isr(struct rt_frame *f)
{
    (void)f;
    uart_vectors++;
    /* Service every pending source until IIR says none is left, so an
     * edge-triggered line is low again when we EOI. */
    for (u32 round = 0; round < 32; round++) {
        u8 iir = inb(COM1_BASE + UART_IIR);
        if (iir & 0x01)
            break;
        switch (iir & 0x0e) {
        case 0x02:                      /* THR empty */
            thre_irqs++;
            if (tx_pos < sizeof(tx_msg) - 1) {
                outb(COM1_BASE + UART_THR, (u8)tx_msg[tx_pos]);
                tx_pos = tx_pos + 1;
            } else {
                tx_done = 1;
                outb(COM1_BASE + UART_IER, IER_RDA);
            }
            break;
        case 0x04:                      /* received data available */
        case 0x0c:                      /* character timeout (FIFO mode) */
            rx_irqs++;
            for (u32 n = 0; n < 64 && (inb(COM1_BASE + UART_LSR) & 0x01); n++) {
                u8 c = inb(COM1_BASE + UART_RBR);
                if (rx_head - rx_tail < RX_RING) {
                    rx_ring[rx_head % RX_RING] = c;
                    rx_head = rx_head + 1;
                } else {
                    rx_dropped++;
                }
            }
            break;
        case 0x06:                      /* line status */
            other_uart_irqs++;
            (void)inb(COM1_BASE + UART_LSR);
            break;
        default:                        /* 0x00: modem status */
            other_uart_irqs++;
            (void)inb(COM1_BASE + UART_MSR);
            break;
        }
    }
    lapic_eoi();
}

/* TSC frequency in Hz from CPUID if the CPU or hypervisor reports it, else 0. */
static u64 tsc_hz_from_cpuid(void)
{
    u32 a, b, c, d, max;
    cpuid(0, 0, &max, &b, &c, &d);
    if (max >= 0x15) {
        cpuid(0x15, 0, &a, &b, &c, &d);
        if (a && b && c)
            return rt_udiv64((u64)c * b, a);
    }
    if (max >= 0x16) {
        cpuid(0x16, 0, &a, &b, &c, &d);
        if (a & 0xffff)
            return (u64)(a & 0xffff) * 1000000u;
    }
    cpuid(1, 0, &a, &b, &c, &d);
    if (c & (1u << 31)) {
        cpuid(0x40000000, 0, &a, &b, &c, &d);
        if (a >= 0x40000010) {
            cpuid(0x40000010, 0, &a, &b, &c, &d);
            if (a)
                return (u64)a * 1000u;
        }
    }
    return 0;
}

void guest_main(u32 start_info_paddr)
{
    (void)start_info_paddr;
    cli();
    idt_init();
    idt_set_handler(VEC_TIMER, timer_isr);
    idt_set_handler(VEC_UART, uart_isr);
    idt_set_handler(VEC_SPURIOUS, spurious_isr);

    pic_init_masked();
    u32 apic_id = lapic_enable(VEC_SPURIOUS);
    u32 ioapic_id = ioapic_read(0) >> 24;
    u32 ioapic_pins = ((ioapic_read(1) >> 16) & 0xff) + 1;
    rt_printf("VOLT-GUEST uart-irq: route=ioapic pin=%u vector=0x%x lapic_id=%u ioapic_id=%u ioapic_pins=%u\n",
              UART_PIN, VEC_UART, apic_id, ioapic_id, ioapic_pins);

    u64 tsc_hz = tsc_hz_from_cpuid();
    rt_printf("VOLT-GUEST uart-irq: tsc_khz=%llu\n", rt_udiv64(tsc_hz, 1000));

    /* Quiet the UART, clear anything stale, then route its pin. */
    outb(COM1_BASE + UART_IER, 0);
    (void)inb(COM1_BASE + UART_LSR);
    (void)inb(COM1_BASE + UART_IIR);
    (void)inb(COM1_BASE + UART_MSR);
    ioapic_route(UART_PIN, VEC_UART, apic_id);
    lapic_timer_periodic(VEC_TIMER, TIMER_COUNT, TIMER_DCR_DIV16);

    /* Phase 1: transmit from the THRE interrupt.  Enabling IER.THRE while THR
     * is empty raises the first THRE interrupt; RX is enabled too, so input
     * arriving early lands in the ring. */
    outb(COM1_BASE + UART_IER, IER_RDA | IER_THRE);
    u32 start = ticks, wakeups = 0;
    while (!tx_done && ticks - start < TX_TIMEOUT_TICKS && wakeups++ < MAX_WAKEUPS)
        rt_wait_irq();
    if (!tx_done) {
        outb(COM1_BASE + UART_IER, IER_RDA);
        rt_printf("\nVOLT-GUEST uart-irq: tx timeout sent=%u thre_irqs=%u ticks=%u\n", tx_pos, thre_irqs, ticks);
    }

    /* Phase 2: read one line from RX interrupts (no echo). */
    serial_puts("READY\n");
    char line[128];
    u32 len = 0, got_line = 0;
    start = ticks;
    wakeups = 0;
    u64 tsc_deadline = tsc_hz ? rdtsc() + tsc_hz * RX_TIMEOUT_SECS : 0;
    for (;;) {
        while (rx_tail != rx_head) {
            u8 c = rx_ring[rx_tail % RX_RING];
            rx_tail = rx_tail + 1;
            if (c == '\r' || c == '\n') {
                got_line = 1;
                break;
            }
            if (len < sizeof(line) - 1)
                line[len++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
        }
        if (got_line)
            break;
        if (ticks - start >= RX_TIMEOUT_TICKS || (tsc_deadline && rdtsc() >= tsc_deadline) ||
            wakeups++ >= MAX_WAKEUPS)
            break;
        rt_wait_irq();
    }
    line[len] = 0;

    /* Quiesce: no more interrupts from here on; the rest is polled. */
    outb(COM1_BASE + UART_IER, 0);
    ioapic_mask(UART_PIN);
    lapic_timer_stop();

    if (got_line)
        rt_printf("VOLT-GUEST uart-irq: got=%s\n", line);
    else
        rt_printf("VOLT-GUEST uart-irq: got=<timeout>\n");
    rt_printf("VOLT-GUEST uart-irq: thre_irqs=%u rx_irqs=%u\n", thre_irqs, rx_irqs);
    rt_printf("VOLT-GUEST uart-irq: timer_irqs=%u uart_vectors=%u other_uart_irqs=%u rx_dropped=%u\n", ticks,
              uart_vectors, other_uart_irqs, rx_dropped);
    rt_boot_timer_mark();
}
