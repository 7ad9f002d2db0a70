/* crash.elf: triple-faults on purpose.  With an empty IDT, the #UD from ud2
 * cannot be delivered, nor the #GP that follows, nor the #DF: the CPU shuts
 * down and the VMM must report it as a guest crash (exit 1, with RIP). */
#include "rt.h"

void guest_main(u32 start_info_paddr)
{
    (void)start_info_paddr;
    serial_puts("VOLT-GUEST crash: faulting\n");
    static const struct RT_PACKED { u16 limit; u32 base; } empty_idt = { 0, 0 };
    __asm__ volatile("lidt %0; ud2" : : "m"(empty_idt));
}
