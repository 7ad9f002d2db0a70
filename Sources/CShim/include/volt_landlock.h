// Landlock and the prctl/syscall calls around it (no glibc wrappers; variadic syscall()
// and prctl() do not import into Swift). Access bits are defined here, not taken from
// <linux/landlock.h>: Debian 12's header stops at ABI 2 while kernels report newer ABIs.
// Convention: every function returns >= 0 on success or -errno; callers never read errno.
#pragma once
#include <stdint.h>

// Filesystem rights (include/uapi/linux/landlock.h), with the ABI that introduced them.
#define VOLT_LL_FS_EXECUTE      (1ULL << 0)   /* ABI 1 */
#define VOLT_LL_FS_WRITE_FILE   (1ULL << 1)
#define VOLT_LL_FS_READ_FILE    (1ULL << 2)
#define VOLT_LL_FS_READ_DIR     (1ULL << 3)
#define VOLT_LL_FS_REMOVE_DIR   (1ULL << 4)
#define VOLT_LL_FS_REMOVE_FILE  (1ULL << 5)
#define VOLT_LL_FS_MAKE_CHAR    (1ULL << 6)
#define VOLT_LL_FS_MAKE_DIR     (1ULL << 7)
#define VOLT_LL_FS_MAKE_REG     (1ULL << 8)
#define VOLT_LL_FS_MAKE_SOCK    (1ULL << 9)
#define VOLT_LL_FS_MAKE_FIFO    (1ULL << 10)
#define VOLT_LL_FS_MAKE_BLOCK   (1ULL << 11)
#define VOLT_LL_FS_MAKE_SYM     (1ULL << 12)  /* ABI 1: bits 0-12 */
#define VOLT_LL_FS_REFER        (1ULL << 13)  /* ABI 2 */
#define VOLT_LL_FS_TRUNCATE     (1ULL << 14)  /* ABI 3 */
#define VOLT_LL_FS_IOCTL_DEV    (1ULL << 15)  /* ABI 5 */
// Network rights (ABI 4).
#define VOLT_LL_NET_BIND_TCP    (1ULL << 0)
#define VOLT_LL_NET_CONNECT_TCP (1ULL << 1)
// Scopes (ABI 6).
#define VOLT_LL_SCOPE_ABSTRACT_UNIX_SOCKET (1ULL << 0)
#define VOLT_LL_SCOPE_SIGNAL               (1ULL << 1)

/// The highest Landlock ABI the running kernel supports (landlock_create_ruleset with
/// LANDLOCK_CREATE_RULESET_VERSION), or -errno (-ENOSYS: not built, -EOPNOTSUPP: disabled).
int volt_landlock_abi(void);

/// Creates a ruleset handling exactly these rights, adds no rule (nothing is reachable
/// through a path), and restricts the calling thread and its future children
/// (landlock_restrict_self). Needs no_new_privs (or CAP_SYS_ADMIN). Returns 0 or -errno.
int volt_landlock_restrict_empty(uint64_t handled_fs, uint64_t handled_net, uint64_t scoped);

/// Like volt_landlock_restrict_empty, with one path-beneath rule per `paths[i]` granting
/// `access[i]` there (a regular file takes file rights only). Returns 0 or -errno; a path that
/// cannot be opened is -errno of that open, and *failed_index names it (else -1).
int volt_landlock_restrict(uint64_t handled_fs, uint64_t handled_net, uint64_t scoped,
                           const char *const *paths, const uint64_t *access, int count, int *failed_index);

/// prctl(PR_SET_NO_NEW_PRIVS, 1): execve can never grant privileges again.
int volt_set_no_new_privs(void);
/// prctl(PR_GET_NO_NEW_PRIVS): 1, 0 or -errno.
int volt_get_no_new_privs(void);
/// prctl(PR_SET_DUMPABLE, 0): no ptrace attach by same-uid processes, no core.
int volt_set_not_dumpable(void);
