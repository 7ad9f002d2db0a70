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

/* Token-level cmdline helpers (rt/cmdline.c). */
#define RT_CMDLINE_MAX 4096
const char *rt_cmdline(u32 start_info_paddr);                 /* NULL if there is none */
/* Next space-separated token at or after p (NULL at the end); *len = its length. */
const char *rt_cmdline_next(const char *p, usize *len);
int rt_cmdline_word(u32 start_info_paddr, const char *word);  /* exact token match */
/* Value of the last "key=value" token (not NUL-terminated; *len = length), or NULL. */
const char *rt_cmdline_value(u32 start_info_paddr, const char *key, usize *len);
/* Parses decimal or 0x-hex at s (up to len chars); returns chars used, 0 if none/overflow. */
usize rt_parse_u64(const char *s, usize len, u64 *out);
/* 1 and *out set if key=<number> is present and valid; 0 if absent; -1 if malformed. */
int rt_cmdline_u64(u32 start_info_paddr, const char *key, u64 *out);
