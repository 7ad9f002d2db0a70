/* A common interrupt environment for guests that wait on devices: our IDT,
 * 8259s remapped and masked, the LAPIC enabled, and its timer ticking every
 * 10 ms so every `sti; hlt` wakes up and waits can be bounded. */
#include "rt.h"

volatile u32 rt_ticks;

static void tick_isr(struct rt_frame *f)
{
    (void)f;
    rt_ticks++;
    lapic_eoi();
}

static void spurious_isr(struct rt_frame *f)
{
    (void)f;                            /* LAPIC spurious vector: no EOI */
}

u32 rt_tick_start(void)
{
    cli();
    idt_init();
    idt_set_handler(RT_VEC_TIMER, tick_isr);
    idt_set_handler(RT_VEC_SPURIOUS, spurious_isr);
    pic_init_masked();
    u32 apic_id = lapic_enable(RT_VEC_SPURIOUS);
    lapic_timer_periodic(RT_VEC_TIMER, RT_TIMER_COUNT, RT_TIMER_DCR_DIV16);
    return apic_id;
}

void rt_tick_stop(void)
{
    lapic_timer_stop();
}

u32 ioapic_pin_count(void)
{
    return ((ioapic_read(1) >> 16) & 0xff) + 1;
}
