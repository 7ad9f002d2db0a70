/* 256 interrupt stubs, 16 bytes apart, so the IDT entry for vector v is
 * rt_isr_stubs + 16*v.  Each stub pushes a dummy error code where the CPU
 * does not push one, then the vector, and joins rt_isr_common, which calls
 * rt_isr_dispatch(struct rt_frame *).
 *
 * No IRET: on the PVM host KVM runs these guests through its instruction
 * emulator, which cannot emulate a protected-mode IRET (KVM internal error,
 * "emulation failure" at the 0xcf byte).  Everything runs at CPL 0 on one
 * flat stack and CS never changes, so the return is done as POPFL; RET:
 * the CPU frame [eip, cs, eflags] is rewritten to [-, eflags, eip]. */
        .text
        .code32
        .balign 16
        .globl  rt_isr_stubs
rt_isr_stubs:
        .set    vec, 0
        .rept   256
        .balign 16
        .if (vec == 8) || (vec == 10) || (vec == 11) || (vec == 12) || (vec == 13) || (vec == 14) || (vec == 17) || (vec == 21) || (vec == 29) || (vec == 30)
        .else
        pushl   $0
        .endif
        pushl   $vec
        jmp     rt_isr_common
        .set    vec, vec + 1
        .endr

rt_isr_common:
        pushal
        cld
        pushl   %esp                    /* struct rt_frame * */
        call    rt_isr_dispatch
        addl    $4, %esp
        /* frame offsets from %esp: pushal 0..31, vector 32, error 36,
         * eip 40, cs 44, eflags 48 (handlers may have changed eip/eflags). */
        movl    40(%esp), %eax          /* eip */
        movl    48(%esp), %ecx          /* eflags */
        movl    %ecx, 44(%esp)          /* eflags over the cs slot */
        movl    %eax, 48(%esp)          /* eip over the eflags slot */
        popal
        addl    $12, %esp               /* vector, error code, old eip slot */
        popfl                           /* may set IF: a nested interrupt lands below us */
        ret
