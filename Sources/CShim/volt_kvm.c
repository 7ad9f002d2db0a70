#ifdef __linux__
#include "volt_kvm.h"
#include <stdlib.h>

const unsigned long VOLT_KVM_GET_API_VERSION = KVM_GET_API_VERSION;
const unsigned long VOLT_KVM_CREATE_VM = KVM_CREATE_VM;
const unsigned long VOLT_KVM_CHECK_EXTENSION = KVM_CHECK_EXTENSION;
const unsigned long VOLT_KVM_GET_VCPU_MMAP_SIZE = KVM_GET_VCPU_MMAP_SIZE;
const unsigned long VOLT_KVM_GET_SUPPORTED_CPUID = KVM_GET_SUPPORTED_CPUID;
const unsigned long VOLT_KVM_GET_MSR_INDEX_LIST = KVM_GET_MSR_INDEX_LIST;
const unsigned long VOLT_KVM_SET_USER_MEMORY_REGION = KVM_SET_USER_MEMORY_REGION;
const unsigned long VOLT_KVM_SET_TSS_ADDR = KVM_SET_TSS_ADDR;
const unsigned long VOLT_KVM_SET_IDENTITY_MAP_ADDR = KVM_SET_IDENTITY_MAP_ADDR;
const unsigned long VOLT_KVM_CREATE_IRQCHIP = KVM_CREATE_IRQCHIP;
const unsigned long VOLT_KVM_CREATE_PIT2 = KVM_CREATE_PIT2;
const unsigned long VOLT_KVM_IRQ_LINE = KVM_IRQ_LINE;
const unsigned long VOLT_KVM_IRQFD = KVM_IRQFD;
const unsigned long VOLT_KVM_IOEVENTFD = KVM_IOEVENTFD;
const unsigned long VOLT_KVM_CREATE_VCPU = KVM_CREATE_VCPU;
const unsigned long VOLT_KVM_RUN = KVM_RUN;
const unsigned long VOLT_KVM_GET_REGS = KVM_GET_REGS;
const unsigned long VOLT_KVM_SET_REGS = KVM_SET_REGS;
const unsigned long VOLT_KVM_GET_SREGS = KVM_GET_SREGS;
const unsigned long VOLT_KVM_SET_SREGS = KVM_SET_SREGS;
const unsigned long VOLT_KVM_SET_MSRS = KVM_SET_MSRS;
const unsigned long VOLT_KVM_GET_MSRS = KVM_GET_MSRS;
const unsigned long VOLT_KVM_GET_CLOCK = KVM_GET_CLOCK;
const unsigned long VOLT_KVM_SET_CLOCK = KVM_SET_CLOCK;
const unsigned long VOLT_KVM_GET_DEVICE_ATTR = KVM_GET_DEVICE_ATTR;
const unsigned long VOLT_KVM_SET_DEVICE_ATTR = KVM_SET_DEVICE_ATTR;
const unsigned long VOLT_KVM_SET_CPUID2 = KVM_SET_CPUID2;
const unsigned long VOLT_KVM_SET_FPU = KVM_SET_FPU;
const unsigned long VOLT_KVM_GET_LAPIC = KVM_GET_LAPIC;
const unsigned long VOLT_KVM_SET_LAPIC = KVM_SET_LAPIC;
const unsigned long VOLT_KVM_GET_XSAVE = KVM_GET_XSAVE;
const unsigned long VOLT_KVM_SET_XSAVE = KVM_SET_XSAVE;
const unsigned long VOLT_KVM_GET_XSAVE2 = KVM_GET_XSAVE2;
const unsigned long VOLT_KVM_GET_XCRS = KVM_GET_XCRS;
const unsigned long VOLT_KVM_SET_XCRS = KVM_SET_XCRS;
const unsigned long VOLT_KVM_GET_VCPU_EVENTS = KVM_GET_VCPU_EVENTS;
const unsigned long VOLT_KVM_SET_VCPU_EVENTS = KVM_SET_VCPU_EVENTS;
const unsigned long VOLT_KVM_GET_MP_STATE = KVM_GET_MP_STATE;
const unsigned long VOLT_KVM_SET_MP_STATE = KVM_SET_MP_STATE;
const unsigned long VOLT_KVM_GET_DEBUGREGS = KVM_GET_DEBUGREGS;
const unsigned long VOLT_KVM_SET_DEBUGREGS = KVM_SET_DEBUGREGS;
const unsigned long VOLT_KVM_GET_FPU = KVM_GET_FPU;
const unsigned long VOLT_KVM_GET_IRQCHIP = KVM_GET_IRQCHIP;
const unsigned long VOLT_KVM_SET_IRQCHIP = KVM_SET_IRQCHIP;
const unsigned long VOLT_KVM_GET_PIT2 = KVM_GET_PIT2;
const unsigned long VOLT_KVM_SET_PIT2 = KVM_SET_PIT2;
const unsigned long VOLT_KVM_GET_TSC_KHZ = KVM_GET_TSC_KHZ;
const unsigned long VOLT_KVM_SET_TSC_KHZ = KVM_SET_TSC_KHZ;

struct kvm_cpuid2 *volt_cpuid2_alloc(uint32_t n) {
    struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + n * sizeof(struct kvm_cpuid_entry2));
    if (c) c->nent = n;
    return c;
}
struct kvm_msrs *volt_msrs_alloc(uint32_t n) {
    struct kvm_msrs *m = calloc(1, sizeof(*m) + n * sizeof(struct kvm_msr_entry));
    if (m) m->nmsrs = n;
    return m;
}
struct kvm_msr_list *volt_msr_list_alloc(uint32_t n) {
    struct kvm_msr_list *l = calloc(1, sizeof(*l) + n * sizeof(uint32_t));
    if (l) l->nmsrs = n;
    return l;
}
uint32_t *volt_msr_list_indices(struct kvm_msr_list *l) { return l->indices; }
struct kvm_cpuid_entry2 *volt_cpuid2_entries(struct kvm_cpuid2 *c) { return c->entries; }
struct kvm_msr_entry *volt_msrs_entries(struct kvm_msrs *m) { return m->entries; }
#endif

struct kvm_device_attr volt_tsc_offset_attr(uint64_t *value) {
    struct kvm_device_attr attr = {
        .group = KVM_VCPU_TSC_CTRL, .attr = KVM_VCPU_TSC_OFFSET, .addr = (uint64_t)(uintptr_t)value,
    };
    return attr;
}
