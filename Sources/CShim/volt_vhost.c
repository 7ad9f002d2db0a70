#ifdef __linux__
#include "volt_vhost.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <linux/vhost.h>

const unsigned long VOLT_VHOST_SET_OWNER = VHOST_SET_OWNER;
const unsigned long VOLT_VHOST_GET_FEATURES = VHOST_GET_FEATURES;

static int ret(int r) { return r < 0 ? -errno : r; }

int volt_vhost_set_features(int fd, uint64_t features) {
    return ret(ioctl(fd, VHOST_SET_FEATURES, &features));
}

int volt_vhost_set_mem_table(int fd, const uint64_t *guest_phys, const uint64_t *sizes,
                             const uint64_t *user_addrs, unsigned count) {
    size_t bytes = sizeof(struct vhost_memory) + count * sizeof(struct vhost_memory_region);
    struct vhost_memory *m = calloc(1, bytes);
    if (!m) return -ENOMEM;
    m->nregions = count;
    for (unsigned i = 0; i < count; i++) {
        m->regions[i].guest_phys_addr = guest_phys[i];
        m->regions[i].memory_size = sizes[i];
        m->regions[i].userspace_addr = user_addrs[i];
    }
    int r = ret(ioctl(fd, VHOST_SET_MEM_TABLE, m));
    free(m);
    return r;
}

static int vring_state(int fd, unsigned long request, unsigned index, unsigned num) {
    struct vhost_vring_state s = { .index = index, .num = num };
    return ret(ioctl(fd, request, &s));
}

int volt_vhost_set_vring_num(int fd, unsigned index, unsigned num) { return vring_state(fd, VHOST_SET_VRING_NUM, index, num); }
int volt_vhost_set_vring_base(int fd, unsigned index, unsigned base) { return vring_state(fd, VHOST_SET_VRING_BASE, index, base); }

int volt_vhost_get_vring_base(int fd, unsigned index) {
    struct vhost_vring_state s = { .index = index, .num = 0 };
    int r = ret(ioctl(fd, VHOST_GET_VRING_BASE, &s));
    return r < 0 ? r : (int)s.num;
}

int volt_vhost_set_vring_addr(int fd, unsigned index, uint64_t desc, uint64_t used, uint64_t avail) {
    struct vhost_vring_addr a;
    memset(&a, 0, sizeof a);
    a.index = index;
    a.desc_user_addr = desc;
    a.used_user_addr = used;
    a.avail_user_addr = avail;
    return ret(ioctl(fd, VHOST_SET_VRING_ADDR, &a));
}

static int vring_file(int fd, unsigned long request, unsigned index, int file) {
    struct vhost_vring_file f = { .index = index, .fd = file };
    return ret(ioctl(fd, request, &f));
}

int volt_vhost_set_vring_kick(int fd, unsigned index, int eventfd) { return vring_file(fd, VHOST_SET_VRING_KICK, index, eventfd); }
int volt_vhost_set_vring_call(int fd, unsigned index, int eventfd) { return vring_file(fd, VHOST_SET_VRING_CALL, index, eventfd); }
int volt_vhost_net_set_backend(int fd, unsigned index, int tap_fd) { return vring_file(fd, VHOST_NET_SET_BACKEND, index, tap_fd); }
#endif
