/* hello.elf: the smallest useful guest.  Marks the boot timer, prints one
 * line, resets.  With "halt" on its cmdline it stays halted instead of
 * resetting (benchmarks measure the VMM's memory while a guest runs). */
#include "rt.h"
#include "start_info.h"

void guest_main(u32 start_info_paddr)
{
    rt_boot_timer_mark();
    serial_puts("VOLT-GUEST hello: ok\n");
    if (rt_cmdline_has(start_info_paddr, "halt"))
        for (;;)
            __asm__ volatile("cli; hlt");
}
