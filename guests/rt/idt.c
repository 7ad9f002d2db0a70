/* A 256-entry IDT of 32-bit interrupt gates pointing at the stubs in isr.S. */
#include "rt.h"

struct RT_PACKED idt_gate {
    u16 offset_lo;
    u16 selector;
    u8  zero;
    u8  type_attr;
    u16 offset_hi;
};

extern char rt_isr_stubs[];
static struct idt_gate idt[256] __attribute__((aligned(8)));
static rt_irq_fn handlers[256];

static const char *const exception_names[32] = {
    "#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM", "#DF", "?9", "#TS", "#NP", "#SS", "#GP",
    "#PF", "?15", "#MF", "#AC", "#MC", "#XM", "#VE", "#CP",
};

void idt_init(void)
{
    for (u32 v = 0; v < 256; v++) {
        u32 addr = (u32)rt_isr_stubs + v * 16;
        idt[v].offset_lo = (u16)addr;
        idt[v].selector = 0x08;
        idt[v].zero = 0;
        idt[v].type_attr = 0x8e;            /* present, DPL 0, 32-bit interrupt gate */
        idt[v].offset_hi = (u16)(addr >> 16);
    }
    struct RT_PACKED { u16 limit; u32 base; } desc = { sizeof(idt) - 1, (u32)idt };
    __asm__ volatile("lidt %0" : : "m"(desc));
}

void idt_set_handler(u8 vector, rt_irq_fn fn)
{
    handlers[vector] = fn;
}

void rt_isr_dispatch(struct rt_frame *f);
void rt_isr_dispatch(struct rt_frame *f)
{
    u32 v = f->vector & 0xff;
    if (handlers[v]) {
        handlers[v](f);
        return;
    }
    if (v < 32) {
        const char *name = exception_names[v] ? exception_names[v] : "?";
        rt_printf("VOLT-GUEST rt: exception vector=%u (%s) error=0x%x eip=0x%x cs=0x%x eflags=0x%x\n",
                  v, name, f->error, f->eip, f->cs, f->eflags);
        rt_reset();
    }
    rt_printf("VOLT-GUEST rt: unexpected vector=%u\n", v);
    if (v >= 0x20 && v < 0x30) {             /* remapped 8259 range */
        if (v >= 0x28)
            outb(0xa0, 0x20);
        outb(0x20, 0x20);
    } else if (v != 0xff) {
        lapic_eoi();
    }
}
