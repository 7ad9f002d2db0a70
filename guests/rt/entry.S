/* PVH entry for the volt-vmm test guests (32-bit protected mode, paging off).
 *
 * Contract we rely on at _start: flat 4 GiB CS/DS/ES/SS already loaded
 * (hidden parts), interrupts off, EBX = physical address of hvm_start_info.
 * We rely on nothing else: no stack, no usable GDT in memory, no zeroed .bss.
 */
#define XEN_ELFNOTE_PHYS32_ENTRY 18

        .section .note.Xen, "a"
        .balign 4
        .long   4                       /* namesz: "Xen\0" */
        .long   4                       /* descsz: one 32-bit address */
        .long   XEN_ELFNOTE_PHYS32_ENTRY
        .asciz  "Xen"
        .balign 4
        .long   _start

        .section .text.entry, "ax"
        .code32
        .globl  _start
_start:
        cli
        cld
        /* Record the state the VMM handed us, before changing any of it.
         * These stores go through the VMM-provided DS (the contract). */
        movl    %ebx, rt_entry_ebx
        movl    %cs, %eax
        movl    %eax, rt_entry_cs
        movl    %ds, %eax
        movl    %eax, rt_entry_ds
        movl    %ss, %eax
        movl    %eax, rt_entry_ss
        movl    %cr0, %eax
        movl    %eax, rt_entry_cr0
        movl    %cr4, %eax
        movl    %eax, rt_entry_cr4
        sgdt    rt_entry_gdtr

        /* Our own stack, then EFLAGS as we found it. */
        movl    $rt_stack_top, %esp
        pushfl
        popl    rt_entry_eflags

        /* Our own GDT, so far returns and IRET always find valid descriptors. */
        lgdt    rt_gdt_desc
        ljmp    $0x08, $1f
1:      movl    $0x10, %eax
        movl    %eax, %ds
        movl    %eax, %es
        movl    %eax, %ss
        movl    %eax, %fs
        movl    %eax, %gs
        movl    $rt_stack_top, %esp

        /* Zero .bss ourselves (the stack lives there too; nothing is on it yet). */
        movl    $__bss_start, %edi
        movl    $__bss_end, %ecx
        subl    %edi, %ecx
        shrl    $2, %ecx
        xorl    %eax, %eax
        rep stosl

        pushl   rt_entry_ebx
        call    rt_main
        /* rt_main never returns; be safe anyway. */
2:      cli
        hlt
        jmp     2b

        .section .data
        .balign 16
        .globl  rt_gdt
rt_gdt:
        .quad   0                       /* 0x00 null */
        .quad   0x00cf9a000000ffff      /* 0x08 code: base 0, limit 4 GiB, 32-bit, exec/read */
        .quad   0x00cf92000000ffff      /* 0x10 data: base 0, limit 4 GiB, read/write */
rt_gdt_end:
        .balign 4
        .word   0
rt_gdt_desc:
        .word   rt_gdt_end - rt_gdt - 1
        .long   rt_gdt

        .balign 4
        .globl  rt_entry_ebx, rt_entry_cs, rt_entry_ds, rt_entry_ss
        .globl  rt_entry_cr0, rt_entry_cr4, rt_entry_eflags, rt_entry_gdtr
rt_entry_ebx:    .long 0
rt_entry_cs:     .long 0
rt_entry_ds:     .long 0
rt_entry_ss:     .long 0
rt_entry_cr0:    .long 0
rt_entry_cr4:    .long 0
rt_entry_eflags: .long 0
        .balign 4
        .word   0
rt_entry_gdtr:   .word 0                /* limit */
                 .long 0                /* base  */

        .section .bss
        .balign 16
rt_stack:
        .skip   16384
rt_stack_top:
