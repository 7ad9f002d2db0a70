// The KVM floor: the least a VMM must do from exec to a guest's first output on this
// host. One VM, 128 MiB of memfd RAM, one vCPU in real mode running 15 bytes of code that
// write "VOLT-GUEST hello: ok\n" to port 0x3f8 (one exit per byte, as volt-vmm's guests
// do), then HLT. The line goes to stdout in one write; HLT ends the program (exit 0).
// Static, no libc beyond syscalls: `make -C bench` (bench/boot.py runs it side by side).
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#define RAM (128ul << 20)
#define ENTRY 0x1000

static const unsigned char code[] = {
    0xbe, 0x0f, 0x10,       // mov si, msg
    0xba, 0xf8, 0x03,       // mov dx, 0x3f8
    0xac,                   // l: lodsb
    0x84, 0xc0,             //    test al, al
    0x74, 0x03,             //    jz done
    0xee,                   //    out dx, al
    0xeb, 0xf8,             //    jmp l
    0xf4,                   // done: hlt
    'V', 'O', 'L', 'T', '-', 'G', 'U', 'E', 'S', 'T', ' ', 'h', 'e', 'l', 'l', 'o', ':', ' ', 'o', 'k', '\n', 0,
};

static int die(const char *what) { perror(what); return 1; }

int main(void) {
    int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (kvm < 0) return die("/dev/kvm");
    int vm = ioctl(kvm, KVM_CREATE_VM, 0);
    int ram = memfd_create("floor-ram", MFD_CLOEXEC);
    if (vm < 0 || ram < 0 || ftruncate(ram, RAM) < 0) return die("VM or memfd");
    unsigned char *mem = mmap(NULL, RAM, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, ram, 0);
    if (mem == MAP_FAILED) return die("mmap");
    memcpy(mem + ENTRY, code, sizeof code);
    struct kvm_userspace_memory_region region = {.slot = 0, .guest_phys_addr = 0, .memory_size = RAM,
                                                 .userspace_addr = (unsigned long)mem};
    if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &region) < 0) return die("KVM_SET_USER_MEMORY_REGION");
    int vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
    long size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
    if (vcpu < 0 || size <= 0) return die("KVM_CREATE_VCPU");
    struct kvm_run *run = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
    if (run == MAP_FAILED) return die("mmap kvm_run");
    struct kvm_sregs sregs;
    if (ioctl(vcpu, KVM_GET_SREGS, &sregs) < 0) return die("KVM_GET_SREGS");
    sregs.cs.base = 0, sregs.cs.selector = 0, sregs.ds.base = 0, sregs.ds.selector = 0;
    struct kvm_regs regs = {.rip = ENTRY, .rflags = 2};
    if (ioctl(vcpu, KVM_SET_SREGS, &sregs) < 0 || ioctl(vcpu, KVM_SET_REGS, &regs) < 0) return die("KVM_SET_REGS");
    char line[64];
    size_t n = 0;
    for (;;) {
        if (ioctl(vcpu, KVM_RUN, 0) < 0) return die("KVM_RUN");
        if (run->exit_reason == KVM_EXIT_IO && run->io.direction == KVM_EXIT_IO_OUT && n < sizeof line) {
            line[n++] = *((char *)run + run->io.data_offset);
        } else if (run->exit_reason == KVM_EXIT_HLT) {
            return write(1, line, n) == (ssize_t)n ? 0 : 1;
        } else {
            fprintf(stderr, "kvm-floor: exit reason %u\n", run->exit_reason);
            return 1;
        }
    }
}
