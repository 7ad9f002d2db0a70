#ifdef __linux__
#define _GNU_SOURCE
#include "volt_jail.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

static int ret(long r) { return r < 0 ? -errno : (int)r; }

int volt_unshare(int flags) { return ret(unshare(flags)); }

static int write_file(const char *path, const char *text) {
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return -errno;
    size_t len = strlen(text);
    ssize_t n = write(fd, text, len);
    int err = errno;
    close(fd);
    if (n < 0) return -err;
    return (size_t)n == len ? 0 : -EIO;
}

int volt_map_self(uint32_t outer_uid, uint32_t outer_gid) {
    char line[64];
    snprintf(line, sizeof(line), "%u %u 1\n", outer_uid, outer_uid);
    int r = write_file("/proc/self/uid_map", line);
    if (r < 0) return r;
    r = write_file("/proc/self/setgroups", "deny");
    if (r < 0 && r != -ENOENT) return r;
    snprintf(line, sizeof(line), "%u %u 1\n", outer_gid, outer_gid);
    return write_file("/proc/self/gid_map", line);
}

int volt_enter_empty_root(const char *mount_point) {
    // MS_PRIVATE recursively: our tmpfs and the umount below stay in this namespace.
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) return -errno;
    // Read-only, 4 KiB, 2 inodes, mode 0555: nothing can be created in it.
    if (mount("volt-empty", mount_point, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
              "size=4k,nr_inodes=2,mode=0555") < 0) return -errno;
    if (chdir(mount_point) < 0) return -errno;
    // pivot_root(".", "."): the old root ends up stacked on "/", then is detached, so
    // no path in this namespace leads back to the host's file system.
    if (syscall(SYS_pivot_root, ".", ".") == 0) {
        if (umount2(".", MNT_DETACH) < 0) return -errno;
        if (chdir("/") < 0) return -errno;
        return 0;
    }
    // Fallback: chroot (escapable only with CAP_SYS_CHROOT, which is dropped next).
    if (chroot(".") < 0) return -errno;
    if (chdir("/") < 0) return -errno;
    return 1;
}

int volt_enter_directory_root(const char *dir) {
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) return -errno;
    if (mount(dir, dir, NULL, MS_BIND, NULL) < 0) return -errno;
    // A bind mount takes its flags only on a remount.
    if (mount(NULL, dir, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0) return -errno;
    if (chdir(dir) < 0) return -errno;
    if (syscall(SYS_pivot_root, ".", ".") == 0) {
        if (umount2(".", MNT_DETACH) < 0) return -errno;
        if (chdir("/") < 0) return -errno;
        return 0;
    }
    if (chroot(".") < 0) return -errno;
    if (chdir("/") < 0) return -errno;
    return 1;
}

int volt_set_rlimit(int resource, uint64_t cur, uint64_t max) {
    struct rlimit old, rl;
    if (getrlimit(resource, &old) < 0) return -errno;
    rl.rlim_cur = cur == UINT64_MAX ? RLIM_INFINITY : (rlim_t)cur;
    rl.rlim_max = max == UINT64_MAX ? RLIM_INFINITY : (rlim_t)max;
    // Only ever lowers: a limit the caller already has below the request stays.
    if (old.rlim_max != RLIM_INFINITY && (rl.rlim_max == RLIM_INFINITY || rl.rlim_max > old.rlim_max)) rl.rlim_max = old.rlim_max;
    if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > rl.rlim_max) rl.rlim_cur = rl.rlim_max;
    return ret(setrlimit(resource, &rl));
}

int volt_thread_count(void) {
    DIR *d = opendir("/proc/self/task");
    if (!d) return -errno;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] != '.') n++;
    }
    closedir(d);
    return n;
}
#endif
