/* Polled serial output, formatting, and machine control for the test guests. */
#include "rt.h"

#define UART_THR 0  /* write, DLAB=0 */
#define UART_RBR 0  /* read,  DLAB=0 */
#define UART_DLL 0  /* DLAB=1 */
#define UART_IER 1
#define UART_DLM 1  /* DLAB=1 */
#define UART_IIR 2  /* read */
#define UART_FCR 2  /* write */
#define UART_LCR 3
#define UART_MCR 4
#define UART_LSR 5
#define UART_LSR_THRE 0x20

void serial_init(void)
{
    outb(COM1_BASE + UART_IER, 0x00);
    outb(COM1_BASE + UART_LCR, 0x80);       /* DLAB on */
    outb(COM1_BASE + UART_DLL, 0x01);       /* 115200 baud */
    outb(COM1_BASE + UART_DLM, 0x00);
    outb(COM1_BASE + UART_LCR, 0x03);       /* 8N1, DLAB off */
    outb(COM1_BASE + UART_FCR, 0x00);       /* FIFO off: plain 8250 behaviour */
    outb(COM1_BASE + UART_MCR, 0x0b);       /* DTR | RTS | OUT2 (OUT2 gates the IRQ on PCs) */
}

void serial_putc(char c)
{
    /* Bounded wait: a UART that never reports THRE must not hang the guest. */
    for (u32 spins = 0; spins < 100000; spins++) {
        if (inb(COM1_BASE + UART_LSR) & UART_LSR_THRE)
            break;
        cpu_relax();
    }
    outb(COM1_BASE + UART_THR, (u8)c);
}

void serial_puts(const char *s)
{
    while (*s)
        serial_putc(*s++);
}

usize rt_strlen(const char *s)
{
    usize n = 0;
    while (s[n])
        n++;
    return n;
}

int rt_memcmp(const void *a, const void *b, usize n)
{
    const u8 *x = a, *y = b;
    for (usize i = 0; i < n; i++)
        if (x[i] != y[i])
            return x[i] < y[i] ? -1 : 1;
    return 0;
}

void *memset(void *d, int c, usize n)
{
    u8 *p = d;
    while (n--)
        *p++ = (u8)c;
    return d;
}

void *memcpy(void *d, const void *s, usize n)
{
    u8 *p = d;
    const u8 *q = s;
    while (n--)
        *p++ = *q++;
    return d;
}

/* 64-by-32 division with the hardware DIV; the quotient's high half is done
 * first so DIV never overflows.  (No libgcc for -m32 on this host.) */
static u32 divmod64_32(u64 *n, u32 d)
{
    u32 hi = (u32)(*n >> 32), lo = (u32)*n;
    u32 qhi = hi / d, r = hi % d, qlo;
    __asm__("divl %4" : "=a"(qlo), "=d"(r) : "a"(lo), "d"(r), "rm"(d));
    *n = ((u64)qhi << 32) | qlo;
    return r;
}

u64 rt_udiv64(u64 n, u32 d)
{
    divmod64_32(&n, d);
    return n;
}

/* 64/64 division by shift and subtract (no libgcc); slow, for the few
 * places a 64-bit divisor is needed. */
u64 rt_udiv64_64(u64 n, u64 d)
{
    u64 q = 0, r = 0;
    for (int i = 63; i >= 0; i--) {
        r = (r << 1) | ((n >> i) & 1);
        if (r >= d) {
            r -= d;
            q |= 1ull << i;
        }
    }
    return q;
}

static void put_num(u64 v, u32 base, int width, char pad)
{
    char buf[24];
    int n = 0;
    do {
        u32 digit = base == 16 ? (u32)(v & 15) : divmod64_32(&v, 10);
        if (base == 16)
            v >>= 4;
        buf[n++] = "0123456789abcdef"[digit];
    } while (v != 0);
    while (n < width && width < 24)
        buf[n++] = pad;
    while (n > 0)
        serial_putc(buf[--n]);
}

void rt_printf(const char *fmt, ...)
{
    __builtin_va_list ap;
    __builtin_va_start(ap, fmt);
    for (const char *p = fmt; *p; p++) {
        if (*p != '%') {
            serial_putc(*p);
            continue;
        }
        p++;
        char pad = ' ';
        int width = 0, longlong = 0;
        if (*p == '0') {
            pad = '0';
            p++;
        }
        while (*p >= '0' && *p <= '9')
            width = width * 10 + (*p++ - '0');
        if (p[0] == 'l' && p[1] == 'l') {
            longlong = 1;
            p += 2;
        }
        switch (*p) {
        case 's': {
            const char *s = __builtin_va_arg(ap, const char *);
            serial_puts(s ? s : "(null)");
            break;
        }
        case 'c':
            serial_putc((char)__builtin_va_arg(ap, int));
            break;
        case 'd': {
            i32 v = __builtin_va_arg(ap, i32);
            if (v < 0) {
                serial_putc('-');
                put_num((u64)(0u - (u32)v), 10, width, pad);
            } else {
                put_num((u64)v, 10, width, pad);
            }
            break;
        }
        case 'u':
        case 'x': {
            u64 v = longlong ? __builtin_va_arg(ap, u64) : (u64)__builtin_va_arg(ap, u32);
            put_num(v, *p == 'x' ? 16 : 10, width, pad);
            break;
        }
        case '%':
            serial_putc('%');
            break;
        default:
            serial_putc('%');
            if (*p)
                serial_putc(*p);
            else
                p--;
            break;
        }
    }
    __builtin_va_end(ap);
}

void rt_boot_timer_mark(void)
{
    outb(BOOT_TIMER_PORT, 0x01);
}

void rt_reset(void)
{
    cli();
    outb(I8042_CMD_PORT, 0xfe);             /* i8042 "pulse reset line" */
    /* A VMM stops at the I/O exit; give an emulator a moment to act before
     * the fallback. */
    for (volatile u32 i = 0; i < 1000; i++)
        cpu_relax();
    outb(DEBUG_EXIT_PORT, 0x00);            /* QEMU isa-debug-exit: exit status 1 */
    for (;;)
        __asm__ volatile("cli; hlt");
}

void rt_main(u32 start_info_paddr)
{
    serial_init();
    guest_main(start_info_paddr);
    rt_reset();
}

#include "start_info.h"

int rt_cmdline_has(u32 start_info_paddr, const char *word)
{
    const struct hvm_start_info *si = (const struct hvm_start_info *)start_info_paddr;
    if (!si || si->magic != HVM_START_MAGIC || !si->cmdline_paddr || si->cmdline_paddr >= 0xffffffffu)
        return 0;
    const char *s = (const char *)(u32)si->cmdline_paddr;
    usize n = rt_strlen(word);
    for (usize i = 0; s[i] && i < 4096; i++)
        if (rt_memcmp(s + i, word, n) == 0)
            return 1;
    return 0;
}
