/* Kernel-cmdline helpers: the cmdline is space-separated tokens, either
 * plain words ("blk.readonly") or key=value pairs ("blk.seed=7").  For a key
 * given several times the last one wins (as in Linux). */
#include "rt.h"
#include "start_info.h"

const char *rt_cmdline(u32 start_info_paddr)
{
    const struct hvm_start_info *si = (const struct hvm_start_info *)start_info_paddr;
    if (!si || si->magic != HVM_START_MAGIC || !si->cmdline_paddr || si->cmdline_paddr >= 0xffffffffu)
        return NULL;
    return (const char *)(u32)si->cmdline_paddr;
}

const char *rt_cmdline_next(const char *p, usize *len)
{
    if (!p)
        return NULL;
    while (*p == ' ' || *p == '\t' || *p == '\n')
        p++;
    if (!*p)
        return NULL;
    usize n = 0;
    while (p[n] && p[n] != ' ' && p[n] != '\t' && p[n] != '\n' && n < RT_CMDLINE_MAX)
        n++;
    *len = n;
    return p;
}

int rt_cmdline_word(u32 start_info_paddr, const char *word)
{
    usize wl = rt_strlen(word), n;
    const char *s = rt_cmdline(start_info_paddr);
    for (const char *t = rt_cmdline_next(s, &n); t; t = rt_cmdline_next(t + n, &n))
        if (n == wl && rt_memcmp(t, word, n) == 0)
            return 1;
    return 0;
}

const char *rt_cmdline_value(u32 start_info_paddr, const char *key, usize *len)
{
    usize kl = rt_strlen(key), n;
    const char *s = rt_cmdline(start_info_paddr), *found = NULL;
    for (const char *t = rt_cmdline_next(s, &n); t; t = rt_cmdline_next(t + n, &n))
        if (n > kl && t[kl] == '=' && rt_memcmp(t, key, kl) == 0) {
            found = t + kl + 1;
            *len = n - kl - 1;
        }
    return found;
}

usize rt_parse_u64(const char *s, usize len, u64 *out)
{
    u64 v = 0;
    usize i = 0;
    u32 base = 10;
    if (len >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        base = 16;
        i = 2;
    }
    usize first = i;
    for (; i < len; i++) {
        char c = s[i];
        u32 d;
        if (c >= '0' && c <= '9')
            d = (u32)(c - '0');
        else if (base == 16 && c >= 'a' && c <= 'f')
            d = (u32)(c - 'a' + 10);
        else if (base == 16 && c >= 'A' && c <= 'F')
            d = (u32)(c - 'A' + 10);
        else
            break;
        if (v >> 60)                        /* would overflow */
            return 0;
        v = base == 16 ? (v << 4) | d : v * 10 + d;
    }
    if (i == first)
        return 0;
    *out = v;
    return i;
}

int rt_cmdline_u64(u32 start_info_paddr, const char *key, u64 *out)
{
    usize len;
    const char *v = rt_cmdline_value(start_info_paddr, key, &len);
    if (!v)
        return 0;
    u64 x;
    if (rt_parse_u64(v, len, &x) != len)
        return -1;
    *out = x;
    return 1;
}
