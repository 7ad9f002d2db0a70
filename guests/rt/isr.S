/* 256 interrupt stubs, 16 bytes apart, so the IDT entry for vector v is
 * rt_isr_stubs + 16*v.  Each stub pushes a dummy error code where the CPU
 * does not push one, then the vector, and joins rt_isr_common, which calls
 * rt_isr_dispatch(struct rt_frame *). */
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
        popal
        addl    $8, %esp                /* vector + error code */
        iret
