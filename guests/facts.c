/* facts.elf: reports what the VMM handed the guest (start_info, e820, initrd
 * module, MP table, CPUID) as "FACT key=value" lines for tests to grep. */
#include "rt.h"

#include "start_info.h"

/* Intel MP spec 1.4 structures. */
struct RT_PACKED mp_floating {
    char sig[4];           /* "_MP_" */
    u32 config_paddr;
    u8 length;             /* in 16-byte units, 1 */
    u8 spec_rev;
    u8 checksum;
    u8 feature[5];         /* feature[0] != 0: a default configuration, no table */
};

struct RT_PACKED mp_config {
    char sig[4];           /* "PCMP" */
    u16 base_length;
    u8 spec_rev;
    u8 checksum;
    char oem_id[8];
    char product_id[12];
    u32 oem_table_paddr;
    u16 oem_table_size;
    u16 entry_count;
    u32 lapic_paddr;
    u16 ext_length;
    u8 ext_checksum;
    u8 reserved;
};

/* Addresses the 32-bit, paging-off guest can dereference. */
static int reachable(u64 addr, u64 len)
{
    return addr != 0 && addr < 0x100000000ull && len <= 0x100000000ull - addr;
}

static void print_string_at(u32 paddr, u32 max)
{
    const char *s = (const char *)paddr;
    for (u32 i = 0; i < max && s[i]; i++) {
        char c = s[i];
        serial_putc(c >= 0x20 && c < 0x7f ? c : '?');
    }
}

static u8 sum_bytes(const void *p, u32 len)
{
    const u8 *b = p;
    u8 s = 0;
    for (u32 i = 0; i < len; i++)
        s += b[i];
    return s;
}

static void report_entry_state(void)
{
    rt_printf("FACT entry cs=0x%x ds=0x%x ss=0x%x cr0=0x%x cr4=0x%x eflags=0x%x gdtr_base=0x%x gdtr_limit=0x%x\n",
              rt_entry_cs & 0xffff, rt_entry_ds & 0xffff, rt_entry_ss & 0xffff, rt_entry_cr0, rt_entry_cr4,
              rt_entry_eflags, rt_entry_gdtr.base, (u32)rt_entry_gdtr.limit);
}

static void report_start_info(const struct hvm_start_info *si)
{
    rt_printf("FACT start_info=0x%x version=%u flags=0x%x\n", (u32)si, si->version, si->flags);

    rt_printf("FACT cmdline=");
    if (reachable(si->cmdline_paddr, 1))
        print_string_at((u32)si->cmdline_paddr, 4096);
    serial_putc('\n');

    rt_printf("FACT rsdp=0x%llx\n", si->rsdp_paddr);

    u64 ram = 0;
    if (si->version >= 1 && reachable(si->memmap_paddr, (u64)si->memmap_entries * sizeof(struct hvm_memmap_entry))) {
        const struct hvm_memmap_entry *e = (const struct hvm_memmap_entry *)(u32)si->memmap_paddr;
        rt_printf("FACT e820_entries=%u\n", si->memmap_entries);
        for (u32 i = 0; i < si->memmap_entries && i < 128; i++) {
            rt_printf("FACT e820 addr=0x%llx size=0x%llx type=%u\n", e[i].addr, e[i].size, e[i].type);
            if (e[i].type == 1)
                ram += e[i].size;
        }
    } else {
        rt_printf("FACT e820=none\n");
    }
    rt_printf("FACT ram_bytes=%llu\n", ram);

    rt_printf("FACT modules=%u\n", si->nr_modules);
    if (si->nr_modules > 0 && reachable(si->modlist_paddr, sizeof(struct hvm_modlist_entry))) {
        const struct hvm_modlist_entry *m = (const struct hvm_modlist_entry *)(u32)si->modlist_paddr;
        rt_printf("FACT module0 addr=0x%llx size=0x%llx first4=", m->paddr, m->size);
        u32 n = m->size < 4 ? (u32)m->size : 4;
        if (reachable(m->paddr, n)) {
            const u8 *b = (const u8 *)(u32)m->paddr;
            for (u32 i = 0; i < n; i++)
                rt_printf("%02x", b[i]);
        }
        serial_putc('\n');
        if (reachable(m->cmdline_paddr, 1)) {
            rt_printf("FACT module0 cmdline=");
            print_string_at((u32)m->cmdline_paddr, 1024);
            serial_putc('\n');
        }
    }
}

static const struct mp_floating *mp_scan(u32 start, u32 end)
{
    for (u32 a = start; a + sizeof(struct mp_floating) <= end; a += 16) {
        const struct mp_floating *fp = (const struct mp_floating *)a;
        if (rt_memcmp(fp->sig, "_MP_", 4) == 0)
            return fp;
    }
    return NULL;
}

static void report_mp(void)
{
    const struct mp_floating *fp = NULL;
    /* MP spec 1.4 §4: first KiB of the EBDA (segment at 0x40e), the last KiB
     * of base memory, then the BIOS ROM area. */
    u32 ebda = (u32)(*(volatile u16 *)0x40e) << 4;
    if (ebda >= 0x80000 && ebda < 0xa0000)
        fp = mp_scan(ebda, ebda + 1024);
    if (!fp)
        fp = mp_scan(0x9fc00, 0xa0000);
    if (!fp)
        fp = mp_scan(0xf0000, 0x100000);
    if (!fp) {
        rt_printf("FACT mp=none\n");
        return;
    }

    int ok = fp->length >= 1 && sum_bytes(fp, fp->length * 16u) == 0;
    rt_printf("FACT mp_floating=0x%x spec_rev=%u feature1=%u\n", (u32)fp, fp->spec_rev, fp->feature[0]);
    if (fp->feature[0] != 0 || !reachable(fp->config_paddr, sizeof(struct mp_config))) {
        rt_printf("FACT mp_checksum=%s\n", ok ? "ok" : "bad");
        rt_printf("FACT mp_config=none\n");
        return;
    }

    const struct mp_config *ct = (const struct mp_config *)fp->config_paddr;
    if (rt_memcmp(ct->sig, "PCMP", 4) != 0 || ct->base_length < sizeof(*ct)) {
        rt_printf("FACT mp_checksum=bad\n");
        rt_printf("FACT mp_config=invalid\n");
        return;
    }
    ok = ok && sum_bytes(ct, ct->base_length) == 0;
    rt_printf("FACT mp_checksum=%s\n", ok ? "ok" : "bad");
    rt_printf("FACT mp_config=0x%x length=%u entries=%u lapic=0x%x\n", (u32)ct, ct->base_length, ct->entry_count,
              ct->lapic_paddr);

    u32 cpus = 0, bsp = 0xffffffffu, ioapic = 0, ioapics = 0, ioints = 0;
    const u8 *p = (const u8 *)(ct + 1);
    const u8 *end = (const u8 *)ct + ct->base_length;
    u32 walked = 0;
    u8 isa_bus[256];
    memset(isa_bus, 0, sizeof(isa_bus));
    /* Walk by base_length, as Linux does: some firmware (QEMU microvm's qboot)
     * leaves entry_count at 0 while filling the table. */
    while (p < end) {
        u32 len;
        switch (p[0]) {
        case 0:                                  /* processor */
            len = 20;
            rt_printf("FACT mp_cpu apic_id=%u flags=0x%x\n", p[1], p[3]);
            if (p[3] & 1) {
                cpus++;
                if (p[3] & 2)
                    bsp = p[1];
            }
            break;
        case 2:                                  /* I/O APIC */
            len = 8;
            if (p[3] & 1) {
                if (ioapics == 0)
                    ioapic = *(const u32 *)(p + 4);
                ioapics++;
            }
            break;
        case 3:                                  /* I/O interrupt assignment */
            len = 8;
            ioints++;
            /* p[1] type, p[2..3] flags, p[4] bus, p[5] bus irq, p[6] ioapic id, p[7] pin */
            if (p[1] == 0 && isa_bus[p[4]] && p[5] == 4)
                rt_printf("FACT mp_irq4 bus=%u ioapic_id=%u pin=%u\n", p[4], p[6], p[7]);
            break;
        case 1:                                  /* bus: p[1] id, p[2..7] type string */
            len = 8;
            if (rt_memcmp(p + 2, "ISA", 3) == 0)
                isa_bus[p[1]] = 1;
            break;
        case 4:                                  /* local interrupt assignment */
            len = 8;
            break;
        default:
            rt_printf("FACT mp_unknown_entry type=%u\n", p[0]);
            len = (u32)(end - p);
            break;
        }
        p += len;
        walked++;
    }
    rt_printf("FACT mp_entries_walked=%u\n", walked);
    rt_printf("FACT mp_cpus=%u\n", cpus);
    if (bsp != 0xffffffffu)
        rt_printf("FACT mp_bsp=%u\n", bsp);
    else
        rt_printf("FACT mp_bsp=none\n");
    rt_printf("FACT mp_ioapic=0x%x\n", ioapic);
    rt_printf("FACT mp_ioapics=%u mp_ioints=%u\n", ioapics, ioints);
}

static void report_cpuid(void)
{
    u32 a, b, c, d;
    cpuid(1, 0, &a, &b, &c, &d);
    u32 hv = (c >> 31) & 1;
    rt_printf("FACT cpuid_apic_id=%u\n", b >> 24);
    rt_printf("FACT cpuid_hypervisor=%u\n", hv);
    if (!hv) {
        rt_printf("FACT cpuid_vendor=none\n");
        return;
    }
    cpuid(0x40000000, 0, &a, &b, &c, &d);
    char sig[13];
    memcpy(sig + 0, &b, 4);
    memcpy(sig + 4, &c, 4);
    memcpy(sig + 8, &d, 4);
    sig[12] = 0;
    rt_printf("FACT cpuid_vendor=");
    print_string_at((u32)sig, 12);
    serial_putc('\n');
    rt_printf("FACT cpuid_hv_max_leaf=0x%x\n", a);
}

void guest_main(u32 start_info_paddr)
{
    report_entry_state();
    const struct hvm_start_info *si = (const struct hvm_start_info *)start_info_paddr;
    if (!reachable(start_info_paddr, sizeof(*si)) || si->magic != HVM_START_MAGIC) {
        rt_printf("FACT start_info=bad ebx=0x%x magic=0x%x\n", start_info_paddr,
                  reachable(start_info_paddr, 4) ? si->magic : 0);
    } else {
        report_start_info(si);
    }
    report_mp();
    report_cpuid();
    serial_puts("VOLT-GUEST facts: done\n");
}
