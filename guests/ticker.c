/* ticker.elf: the guest's own clocks, printed.  One line every ticker.ms
 * milliseconds of TSC time, with the TSC and the kvmclock milliseconds since
 * the first line: if the VMM pauses the VM and holds a clock still while
 * paused, its column stays evenly spaced across the pause; if the clock runs
 * on, it jumps.
 *
 * It also drives the i8042 keyboard through its interrupt (IRQ 1 -> IOAPIC
 * pin 1 -> LAPIC), asks the keyboard for its ID, and decodes scan code set 1
 * (the controller translates): on Ctrl+Alt+Del it says so and resets through
 * the i8042 (0xFE), as a PC does.
 *
 * Waits are `sti; hlt`, woken by the runtime's 10 ms LAPIC tick or the
 * keyboard; every wait before the ticking has a TSC deadline.  Lines: README.md. */
#include "rt.h"
#include "start_info.h"

#define KBC_DATA          0x60
#define KBC_STATUS        0x64          /* read */
#define KBC_COMMAND       0x64          /* write */
#define KBC_STR_OBF       0x01
#define KBC_STR_IBF       0x02
#define KBC_STR_AUXDATA   0x20
#define KBC_CMD_READ_CTR  0x20
#define KBC_CMD_WRITE_CTR 0x60
#define KBC_CTR_KBDINT    0x01
#define KBC_CTR_AUXINT    0x02
#define KBC_CTR_KBDDIS    0x10
#define KBC_CTR_AUXDIS    0x20
#define KBC_CTR_XLATE     0x40
#define KBD_CMD_IDENTIFY  0xf2
#define KBD_IRQ           1             /* ISA IRQ 1 = IOAPIC pin 1 (the MP table says so) */
#define VEC_KBD           0x42

/* Set 1 make codes; a break code is the make code | 0x80. */
#define SC_EXTENDED       0xe0
#define SC_CTRL           0x1d          /* E0 1D is the right Ctrl */
#define SC_ALT            0x38          /* E0 38 is the right Alt */
#define SC_DELETE         0x53          /* E0 53; without E0 it is keypad '.' */

#define KBC_TIMEOUT_MS    500u          /* Linux's i8042 waits as long for a reply */

static volatile u8 kbd_ring[64];
static volatile u32 kbd_head, kbd_tail; /* head written by the ISR, tail by the main loop */
static volatile u32 kbd_irqs, kbd_dropped;
static u64 tsc_khz;

static u64 cmdline_num(u32 si, const char *key, u64 def)
{
    u64 v;
    int r = rt_cmdline_u64(si, key, &v);
    if (r < 0)
        rt_printf("VOLT-GUEST ticker: bad %s= value, using %llu\n", key, def);
    return r > 0 ? v : def;
}

static u64 ms_to_cycles(u64 ms)
{
    return ms * tsc_khz;
}

/* Takes every byte the controller holds (bounded: Linux's i8042 never expects
 * more than 16).  Keyboard bytes go to the ring; aux bytes are dropped. */
static void kbd_drain(void)
{
    for (u32 n = 0; n < 16; n++) {
        u8 status = inb(KBC_STATUS);
        if (!(status & KBC_STR_OBF))
            break;
        u8 b = inb(KBC_DATA);
        if (status & KBC_STR_AUXDATA)
            continue;
        if (kbd_head - kbd_tail < sizeof(kbd_ring)) {
            kbd_ring[kbd_head % sizeof(kbd_ring)] = b;
            kbd_head = kbd_head + 1;
        } else {
            kbd_dropped++;
        }
    }
}

static void kbd_isr(struct rt_frame *f)
{
    (void)f;
    kbd_irqs++;
    kbd_drain();
    lapic_eoi();
}

static int kbd_next(u8 *b)
{
    if (kbd_tail == kbd_head)
        return 0;
    *b = kbd_ring[kbd_tail % sizeof(kbd_ring)];
    kbd_tail = kbd_tail + 1;
    return 1;
}

/* Polls the status register until (status & mask) == want, halting between
 * polls (the 10 ms tick wakes us); 0 on timeout.  Interrupts stay off outside
 * the halt, and IRQ 1 is not routed yet, so nothing else reads port 0x60. */
static int kbc_wait(u8 mask, u8 want)
{
    u64 start = rdtsc();
    for (;;) {
        u8 status = inb(KBC_STATUS);
        if (status == 0xff)             /* no device on the port: an empty ISA bus */
            return 0;
        if ((status & mask) == want)
            return 1;
        if (rdtsc() - start >= ms_to_cycles(KBC_TIMEOUT_MS))
            return 0;
        rt_wait_irq();
    }
}

static int kbc_command(u8 command)
{
    if (!kbc_wait(KBC_STR_IBF, 0))
        return 0;
    outb(KBC_COMMAND, command);
    return 1;
}

static int kbc_write_data(u8 value)
{
    if (!kbc_wait(KBC_STR_IBF, 0))
        return 0;
    outb(KBC_DATA, value);
    return 1;
}

/* Command byte: keyboard interrupt on, keyboard enabled, translation to set 1
 * on; the aux port (there is no mouse) off.  Returns the value written, or -1
 * if the controller does not answer. */
static int kbc_setup(void)
{
    for (u32 n = 0; n < 16; n++) {      /* stale bytes */
        u8 status = inb(KBC_STATUS);
        if (status == 0xff || !(status & KBC_STR_OBF))
            break;
        (void)inb(KBC_DATA);
    }
    if (!kbc_command(KBC_CMD_READ_CTR) || !kbc_wait(KBC_STR_OBF, KBC_STR_OBF))
        return -1;
    u8 ctr = inb(KBC_DATA);
    ctr = (u8)((ctr | KBC_CTR_KBDINT | KBC_CTR_XLATE | KBC_CTR_AUXDIS) & ~(KBC_CTR_KBDDIS | KBC_CTR_AUXINT));
    if (!kbc_command(KBC_CMD_WRITE_CTR) || !kbc_write_data(ctr))
        return -1;
    return ctr;
}

/* Sends the identify command and collects its three reply bytes from the
 * interrupt handler: FA (ACK), then AB 41 for an MF2 keyboard behind a
 * translating controller.  Returns how many arrived before the deadline. */
static u32 kbd_identify(u8 reply[3])
{
    u32 got = 0;
    if (!kbc_write_data(KBD_CMD_IDENTIFY))
        return 0;
    u64 start = rdtsc();
    while (got < 3 && rdtsc() - start < ms_to_cycles(KBC_TIMEOUT_MS)) {
        if (!kbd_next(&reply[got]))
            rt_wait_irq();
        else
            got++;
    }
    return got;
}

/* Set 1 decoder: tracks Ctrl and Alt (either side); returns 1 when Delete
 * (E0 53) goes down while both are held. */
static int ctrl_alt_del(u8 b)
{
    static int extended, ctrl, alt;
    if (b == SC_EXTENDED) {
        extended = 1;
        return 0;
    }
    int down = !(b & 0x80), was_extended = extended;
    u8 code = b & 0x7f;
    extended = 0;
    if (code == SC_CTRL)
        ctrl = down;
    else if (code == SC_ALT)
        alt = down;
    else if (code == SC_DELETE && was_extended && down && ctrl && alt)
        return 1;
    return 0;
}

void guest_main(u32 si)
{
    u64 period_ms = cmdline_num(si, "ticker.ms", 100);
    u64 ticks = cmdline_num(si, "ticker.ticks", 0);
    if (period_ms == 0)
        period_ms = 1;

    u32 apic_id = rt_tick_start();
    const char *src = "none";
    u32 ppm = 0;
    tsc_khz = rt_tsc_khz_cpuid(&src);
    if (tsc_khz) {
        rt_printf("VOLT-GUEST ticker: tsc_khz=%llu source=%s\n", tsc_khz, src);
    } else if ((tsc_khz = rt_tsc_khz_lapic(&ppm)) != 0) {
        rt_printf("VOLT-GUEST ticker: tsc_khz=%llu source=lapic calibration_ms=%u uncertainty_ppm=%u\n", tsc_khz,
                  RT_TSC_CAL_MS, ppm);
    } else {
        rt_printf("VOLT-GUEST ticker: FAIL no TSC frequency (LAPIC timer did not count)\n");
        rt_tick_stop();
        return;
    }

    int ctr = kbc_setup();
    if (ctr < 0) {
        rt_printf("VOLT-GUEST ticker: keyboard none (the i8042 did not answer)\n");
    } else {
        idt_set_handler(VEC_KBD, kbd_isr);
        ioapic_route(KBD_IRQ, VEC_KBD, apic_id);
        /* An edge raised while the pin was still masked is lost: take what is there. */
        kbd_drain();
        u8 id[3] = { 0, 0, 0 };
        u32 got = kbd_identify(id);
        rt_printf("VOLT-GUEST ticker: keyboard ctr=0x%x irq=%u vector=0x%x ack=0x%02x id=0x%02x%02x got=%u irqs=%u\n",
                  ctr, KBD_IRQ, VEC_KBD, id[0], id[1], id[2], got, kbd_irqs);
    }
    int kvmclock = rt_kvmclock_start();
    rt_printf("VOLT-GUEST ticker: period_ms=%llu ticks=%llu kvmclock=%s\n", period_ms, ticks, kvmclock ? "yes" : "no");

    /* Tick k (from 1) is due period_ms after tick k-1's due time, so the
     * schedule does not drift with the 10 ms wake-up granularity.  A tick more
     * than a whole period late (the TSC jumped) starts a new schedule instead
     * of a burst of catch-up lines. */
    u64 period = ms_to_cycles(period_ms);
    u64 first = rdtsc(), due = first;
    u64 first_ns = kvmclock ? rt_kvmclock_ns() : 0;
    /* About period_ms / 10 wakeups per tick are due (plus keyboard ones);
     * ten times that means the TSC or the timer is stuck. */
    u64 max_idle_wakeups = period_ms + 1000;
    u32 idle_wakeups = 0, cad = 0;
    for (u64 k = 1; ticks == 0 || k <= ticks;) {
        u8 b;
        while (kbd_next(&b))
            cad |= (u32)ctrl_alt_del(b);
        if (cad)
            break;
        u64 now = rdtsc();
        if (now >= due) {
            u64 kvm_ms = kvmclock ? rt_udiv64(rt_kvmclock_ns() - first_ns, 1000000u) : 0;
            rt_printf("VOLT-GUEST ticker: tick=%llu tsc_ms=%llu kvm_ms=%llu\n", k, rt_udiv64(now - first, (u32)tsc_khz), kvm_ms);
            due = now - due >= period ? now + period : due + period;
            k++;
            idle_wakeups = 0;
            continue;
        }
        if (++idle_wakeups > max_idle_wakeups) {
            rt_printf("VOLT-GUEST ticker: FAIL no tick after %u wakeups\n", idle_wakeups);
            break;
        }
        rt_wait_irq();
    }

    cli();
    if (ctr >= 0)
        ioapic_mask(KBD_IRQ);
    rt_tick_stop();
    if (cad)
        serial_puts("VOLT-GUEST ticker: ctrl-alt-del\n");
    else
        rt_printf("VOLT-GUEST ticker: done kbd_irqs=%u kbd_dropped=%u\n", kbd_irqs, kbd_dropped);
}
