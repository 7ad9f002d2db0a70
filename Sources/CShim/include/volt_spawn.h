// Process spawning for Subprocess.swift: posix_spawn with the file actions Swift's Glibc module
// does not expose (addchdir_np, addclosefrom_np need _GNU_SOURCE) and the wait-status macros.
// Convention: every function returns >= 0 on success or -errno; callers never read errno.
#pragma once
#include <stddef.h>
#include <sys/types.h>

/// Spawns `path` (an absolute path: no $PATH search) with NULL-terminated `argv` and `envp`.
/// In the child, in this order:
/// - the working directory becomes `directory` (unless NULL);
/// - each `sources[i]` (an fd of the caller) becomes fd `targets[i]`, without close-on-exec.
///   The pairs apply as if at once: a source may be another pair's target (the sources are
///   first duplicated above every target, close-on-exec, and those copies closed again here);
/// - every fd >= `close_from` is closed (unless `close_from` < 0);
/// - the signal mask is emptied and every signal's disposition is reset to the default
///   (volt-vmm blocks termination signals in its threads; a child must not inherit that).
/// Returns the child's pid, or -errno (a failed exec included: glibc reports it here).
int volt_spawn(const char *path, char *const argv[], char *const envp[], const char *directory,
               const int *sources, const int *targets, size_t count, int close_from);

/// waitpid(pid, &status, 0), retried on EINTR. Returns the pid or -errno.
int volt_waitpid(int pid, int *status);

/// WEXITSTATUS(status) if WIFEXITED(status), else -1.
int volt_wait_exit_code(int status);
/// WTERMSIG(status) if WIFSIGNALED(status), else -1.
int volt_wait_term_signal(int status);
