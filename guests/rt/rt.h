/* Shared freestanding runtime for the volt-vmm test guests (32-bit, paging off). */
#ifndef VOLT_GUEST_RT_H
#define VOLT_GUEST_RT_H

typedef unsigned char      u8;
typedef unsigned short     u16;
typedef unsigned int       u32;
typedef unsigned long long u64;
typedef int                i32;
typedef signed char        s8;
typedef u32                usize;

#define NULL ((void *)0)
#define RT_NORETURN __attribute__((noreturn))
#define RT_PACKED   __attribute__((packed))

/* Fixed platform facts from the volt-vmm contract. */
#define COM1_BASE        0x3f8
#define BOOT_TIMER_PORT  0x440
#define I8042_CMD_PORT   0x64
#define DEBUG_EXIT_PORT  0xf4   /* QEMU isa-debug-exit, fallback only */
#define LAPIC_BASE       0xfee00000u
#define IOAPIC_BASE      0xfec00000u

/* ---- port and memory I/O ---- */
static inline void outb(u16 port, u8 v) { __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port)); }
static inline u8 inb(u16 port) { u8 v; __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port)); return v; }
static inline void mmio_write32(u32 addr, u32 v) { *(volatile u32 *)addr = v; }
static inline u32 mmio_read32(u32 addr) { return *(volatile u32 *)addr; }

static inline void cpuid(u32 leaf, u32 sub, u32 *a, u32 *b, u32 *c, u32 *d)
{
    __asm__ volatile("cpuid" : "=a"(*a), "=b"(*b), "=c"(*c), "=d"(*d) : "a"(leaf), "c"(sub));
}
static inline void wrmsr(u32 msr, u64 v) { __asm__ volatile("wrmsr" : : "c"(msr), "a"((u32)v), "d"((u32)(v >> 32)) : "memory"); }
static inline u64 rdtsc(void) { u32 lo, hi; __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi)); return ((u64)hi << 32) | lo; }
static inline void cli(void) { __asm__ volatile("cli" ::: "memory"); }
static inline void sti(void) { __asm__ volatile("sti" ::: "memory"); }
static inline void cpu_relax(void) { __asm__ volatile("pause" ::: "memory"); }
/* Enable interrupts and halt atomically (STI shadow), then mask them again.
 * Call with interrupts off after checking the wake-up condition. */
static inline void rt_wait_irq(void) { __asm__ volatile("sti; hlt; cli" ::: "memory"); }

/* ---- state recorded by entry.S ---- */
extern u32 rt_entry_ebx, rt_entry_cs, rt_entry_ds, rt_entry_ss;
extern u32 rt_entry_cr0, rt_entry_cr4, rt_entry_eflags;
extern struct RT_PACKED { u16 limit; u32 base; } rt_entry_gdtr;

/* Every guest provides this; rt_main resets the machine when it returns. */
void guest_main(u32 start_info_paddr);
RT_NORETURN void rt_main(u32 start_info_paddr);

/* ---- polled COM1 output ---- */
void serial_init(void);          /* 8N1, FIFO off, IER=0, MCR=DTR|RTS|OUT2 */
void serial_putc(char c);        /* waits (bounded) for THRE; '\n' is sent as-is */
void serial_puts(const char *s);
/* printf subset: %s %c %d %u %x (32-bit), %llu %llx (64-bit), width with
 * '0' padding for x/u (e.g. %02x, %08llx), %% . */
void rt_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
u64 rt_udiv64(u64 n, u32 d);     /* 64/32 division without libgcc */
u64 rt_udiv64_64(u64 n, u64 d);  /* 64/64, bit by bit (slow) */
usize rt_strlen(const char *s);
int rt_memcmp(const void *a, const void *b, usize n);
void *memset(void *d, int c, usize n);
void *memcpy(void *d, const void *s, usize n);

/* ---- machine control ---- */
void rt_boot_timer_mark(void);   /* one write to port 0x440 */
/* i8042 reset (volt-vmm exits 0), then QEMU isa-debug-exit, then cli/hlt forever. */
RT_NORETURN void rt_reset(void);

/* ---- interrupts (rt/idt.c, rt/isr.S) ---- */
struct rt_frame {
    u32 edi, esi, ebp, esp_unused, ebx, edx, ecx, eax;   /* pushal */
    u32 vector, error;
    u32 eip, cs, eflags;                                  /* pushed by the CPU */
};
typedef void (*rt_irq_fn)(struct rt_frame *f);
void idt_init(void);                       /* loads a 256-entry IDT; exceptions print and reset */
void idt_set_handler(u8 vector, rt_irq_fn fn);

/* ---- interrupt controllers (rt/apic.c) ---- */
void pic_init_masked(void);                /* remap 8259s to 0x20/0x28, mask all lines */
u32  lapic_enable(u8 spurious_vector);     /* software-enable LAPIC, mask LINT0/LINT1/error; returns APIC ID */
void lapic_eoi(void);
void lapic_timer_periodic(u8 vector, u32 initial_count, u32 divide_code);
void lapic_timer_stop(void);
u32  ioapic_read(u32 reg);
void ioapic_write(u32 reg, u32 v);
/* Route IOAPIC pin to vector on the LAPIC with the given ID: fixed, physical,
 * edge-triggered, active-high (the ISA convention). */
void ioapic_route(u32 pin, u8 vector, u32 apic_id);
void ioapic_mask(u32 pin);


/* ---- ticking wait environment (rt/tick.c) ---- */
#define RT_VEC_TIMER        0x40
#define RT_VEC_SPURIOUS     0xff
#define RT_TIMER_DCR_DIV16  0x3
#define RT_TIMER_COUNT      625000u  /* /16 at KVM's 1 GHz LAPIC clock: 10 ms */
#define RT_TICKS_PER_SEC    100u
extern volatile u32 rt_ticks;        /* LAPIC timer ticks since rt_tick_start */
/* cli; IDT; 8259s masked; LAPIC on; periodic timer.  Returns the BSP's APIC ID.
 * Interrupts stay off: wait with rt_wait_irq(). */
u32  rt_tick_start(void);
void rt_tick_stop(void);
u32  ioapic_pin_count(void);         /* redirection entries of the IOAPIC */
/* ---- TSC frequency (rt/tsc.c) ---- */
#define RT_TSC_CAL_MS 50u
/* kHz as CPUID states it: leaf 0x15 (crystal x ratio) or the hypervisor leaf
 * 0x40000010; *source = "cpuid15" | "cpuid40000010".  0 if neither does
 * (leaf 0x16 gives whole MHz only and is not used). */
u32  rt_tsc_khz_cpuid(const char **source);
/* kHz measured over RT_TSC_CAL_MS of the LAPIC timer (1 count = 1 ns at KVM's
 * 1 GHz).  After rt_tick_start, interrupts off; restarts the periodic tick.
 * *ppm = worst-case error.  0 if the timer does not count. */
u32  rt_tsc_khz_lapic(u32 *ppm);

/* ---- kvmclock (rt/kvmclock.c) ---- */
/* Registers this vCPU's kvmclock record (MSR_KVM_SYSTEM_TIME_NEW).  0 if the
 * hypervisor offers no kvmclock (CPUID 0x40000001 bit 3). */
int  rt_kvmclock_start(void);
u64  rt_kvmclock_ns(void);           /* guest ns since the VM started; after rt_kvmclock_start */

static inline void rt_mb(void) { __asm__ volatile("lock; addl $0, (%%esp)" ::: "memory"); }
static inline void rt_barrier(void) { __asm__ volatile("" ::: "memory"); }

#endif
