/* hello.elf: the smallest useful guest.  Marks the boot timer, prints one
 * line, resets. */
#include "rt.h"

void guest_main(u32 start_info_paddr)
{
    (void)start_info_paddr;
    rt_boot_timer_mark();
    serial_puts("VOLT-GUEST hello: ok\n");
}
