#ifdef __linux__
#define _GNU_SOURCE
#include "volt_landlock.h"
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

// Syscall numbers (x86_64 and every other arch use the unified numbers 444-446).
#ifndef SYS_landlock_create_ruleset
#define SYS_landlock_create_ruleset 444
#endif
#ifndef SYS_landlock_add_rule
#define SYS_landlock_add_rule 445
#endif
#ifndef SYS_landlock_restrict_self
#define SYS_landlock_restrict_self 446
#endif
#define VOLT_LL_CREATE_RULESET_VERSION (1U << 0)

// struct landlock_ruleset_attr as of ABI 6. Older kernels accept the larger size as long
// as the fields they do not know are zero (copy_struct_from_user).
struct volt_ruleset_attr {
    uint64_t handled_access_fs;
    uint64_t handled_access_net;
    uint64_t scoped;
};

static int ret(long r) { return r < 0 ? -errno : (int)r; }

int volt_landlock_abi(void) {
    return ret(syscall(SYS_landlock_create_ruleset, NULL, 0, VOLT_LL_CREATE_RULESET_VERSION));
}

// struct landlock_path_beneath_attr (packed in the uapi header).
struct __attribute__((packed)) volt_path_beneath_attr {
    uint64_t allowed_access;
    int32_t parent_fd;
};
#define VOLT_LL_RULE_PATH_BENEATH 1

int volt_landlock_restrict_empty(uint64_t handled_fs, uint64_t handled_net, uint64_t scoped) {
    int failed;
    return volt_landlock_restrict(handled_fs, handled_net, scoped, NULL, NULL, 0, &failed);
}

int volt_landlock_restrict(uint64_t handled_fs, uint64_t handled_net, uint64_t scoped,
                           const char *const *paths, const uint64_t *access, int count, int *failed_index) {
    *failed_index = -1;
    struct volt_ruleset_attr attr;
    memset(&attr, 0, sizeof(attr));
    attr.handled_access_fs = handled_fs;
    attr.handled_access_net = handled_net;
    attr.scoped = scoped;
    // Pass only the part of the struct that is in use, so ABIs 1-3 (8 bytes) and 4-5
    // (16 bytes) take it even from kernels that reject unknown trailing fields.
    size_t size = scoped ? sizeof(attr) : handled_net ? 2 * sizeof(uint64_t) : sizeof(uint64_t);
    int fd = (int)syscall(SYS_landlock_create_ruleset, &attr, size, 0);
    if (fd < 0) return -errno;
    for (int i = 0; i < count; i++) {
        struct volt_path_beneath_attr rule = { access[i], open(paths[i], O_PATH | O_CLOEXEC) };
        if (rule.parent_fd < 0 ||
            syscall(SYS_landlock_add_rule, fd, VOLT_LL_RULE_PATH_BENEATH, &rule, 0) < 0) {
            int err = errno;
            if (rule.parent_fd >= 0) close(rule.parent_fd);
            close(fd);
            *failed_index = i;
            return -err;
        }
        close(rule.parent_fd);
    }
    long r = syscall(SYS_landlock_restrict_self, fd, 0);
    int err = errno;
    close(fd);
    return r < 0 ? -err : 0;
}

int volt_set_no_new_privs(void) { return ret(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)); }
int volt_get_no_new_privs(void) { return ret(prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0)); }
int volt_set_not_dumpable(void) { return ret(prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)); }
#endif
