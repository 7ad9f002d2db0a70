/* The PVH boot ABI (Xen's hvm_start_info, version 1) as the VMM hands it over in EBX. */
#pragma once
#include "rt.h"

#define HVM_START_MAGIC 0x336ec578u

struct RT_PACKED hvm_start_info {
    u32 magic;
    u32 version;
    u32 flags;
    u32 nr_modules;
    u64 modlist_paddr;
    u64 cmdline_paddr;
    u64 rsdp_paddr;
    u64 memmap_paddr;      /* version >= 1 */
    u32 memmap_entries;    /* version >= 1 */
    u32 reserved;
};

struct RT_PACKED hvm_memmap_entry {
    u64 addr;
    u64 size;
    u32 type;
    u32 reserved;
};

struct RT_PACKED hvm_modlist_entry {
    u64 paddr;
    u64 size;
    u64 cmdline_paddr;
    u64 reserved;
};

/* True when the NUL-terminated cmdline in start_info contains `word`. */
int rt_cmdline_has(u32 start_info_paddr, const char *word);
