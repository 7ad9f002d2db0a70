#ifdef __linux__
#define _GNU_SOURCE
#include "volt_spawn.h"
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

int volt_spawn(const char *path, char *const argv[], char *const envp[], const char *directory,
               const int *sources, const int *targets, size_t count, int close_from) {
    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attr;
    int r = posix_spawn_file_actions_init(&actions);
    if (r) return -r;
    r = posix_spawnattr_init(&attr);
    if (r) { posix_spawn_file_actions_destroy(&actions); return -r; }

    // r is a positive error number (posix_spawn* return one) or 0 throughout.
    pid_t pid = -1;
    int *copies = NULL;
    size_t made = 0;
    if (count > 0) {
        copies = calloc(count, sizeof(int));
        if (!copies) { r = ENOMEM; goto out; }
    }
    int above = 0;
    for (size_t i = 0; i < count; i++) {
        if (targets[i] < 0) { r = EBADF; goto out; }
        if (targets[i] >= above) above = targets[i] + 1;
    }
    // Copies numbered above every target can never be overwritten by another pair's dup2.
    for (; made < count; made++) {
        copies[made] = fcntl(sources[made], F_DUPFD_CLOEXEC, above);
        if (copies[made] < 0) { r = errno; goto out; }
    }

    if (directory && (r = posix_spawn_file_actions_addchdir_np(&actions, directory))) goto out;
    // dup2 onto a different number clears close-on-exec on the target; the copies themselves
    // are close-on-exec and vanish at exec.
    for (size_t i = 0; i < count; i++) {
        if ((r = posix_spawn_file_actions_adddup2(&actions, copies[i], targets[i]))) goto out;
    }
    if (close_from >= 0 && (r = posix_spawn_file_actions_addclosefrom_np(&actions, close_from))) goto out;

    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    if ((r = posix_spawnattr_setsigmask(&attr, &none))) goto out;
    if ((r = posix_spawnattr_setsigdefault(&attr, &all))) goto out;
    if ((r = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))) goto out;

    r = posix_spawn(&pid, path, &actions, &attr, argv, envp);

out:
    for (size_t i = 0; i < made; i++) close(copies[i]);
    free(copies);
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&actions);
    return r ? -r : (int)pid;
}

int volt_waitpid(int pid, int *status) {
    int r;
    do { r = waitpid(pid, status, 0); } while (r < 0 && errno == EINTR);
    return r < 0 ? -errno : r;
}

int volt_wait_exit_code(int status) { return WIFEXITED(status) ? WEXITSTATUS(status) : -1; }
int volt_wait_term_signal(int status) { return WIFSIGNALED(status) ? WTERMSIG(status) : -1; }
#endif
