// KVM ABI for Swift: request numbers built by _IO* macros are not importable,
// so they are exported as constants. Structs come from <linux/kvm.h> directly.
#pragma once
#include <linux/kvm.h>
#include <stdint.h>

extern const unsigned long VOLT_KVM_GET_API_VERSION;
extern const unsigned long VOLT_KVM_CREATE_VM;
extern const unsigned long VOLT_KVM_CHECK_EXTENSION;
extern const unsigned long VOLT_KVM_GET_VCPU_MMAP_SIZE;
extern const unsigned long VOLT_KVM_GET_SUPPORTED_CPUID;
extern const unsigned long VOLT_KVM_GET_MSR_INDEX_LIST;
extern const unsigned long VOLT_KVM_SET_USER_MEMORY_REGION;
extern const unsigned long VOLT_KVM_SET_TSS_ADDR;
extern const unsigned long VOLT_KVM_SET_IDENTITY_MAP_ADDR;
extern const unsigned long VOLT_KVM_CREATE_IRQCHIP;
extern const unsigned long VOLT_KVM_CREATE_PIT2;
extern const unsigned long VOLT_KVM_IRQ_LINE;
extern const unsigned long VOLT_KVM_IRQFD;
extern const unsigned long VOLT_KVM_IOEVENTFD;
extern const unsigned long VOLT_KVM_CREATE_VCPU;
extern const unsigned long VOLT_KVM_RUN;
extern const unsigned long VOLT_KVM_GET_REGS;
extern const unsigned long VOLT_KVM_SET_REGS;
extern const unsigned long VOLT_KVM_GET_SREGS;
extern const unsigned long VOLT_KVM_SET_SREGS;
extern const unsigned long VOLT_KVM_SET_MSRS;
extern const unsigned long VOLT_KVM_GET_MSRS;
extern const unsigned long VOLT_KVM_GET_CLOCK;
extern const unsigned long VOLT_KVM_SET_CLOCK;
extern const unsigned long VOLT_KVM_GET_DEVICE_ATTR;
extern const unsigned long VOLT_KVM_SET_DEVICE_ATTR;
extern const unsigned long VOLT_KVM_SET_CPUID2;
extern const unsigned long VOLT_KVM_SET_FPU;
extern const unsigned long VOLT_KVM_GET_LAPIC;
extern const unsigned long VOLT_KVM_SET_LAPIC;
// Snapshots: the rest of a vCPU's and the VM's state.
extern const unsigned long VOLT_KVM_GET_XSAVE;
extern const unsigned long VOLT_KVM_SET_XSAVE;
extern const unsigned long VOLT_KVM_GET_XSAVE2;
extern const unsigned long VOLT_KVM_GET_XCRS;
extern const unsigned long VOLT_KVM_SET_XCRS;
extern const unsigned long VOLT_KVM_GET_VCPU_EVENTS;
extern const unsigned long VOLT_KVM_SET_VCPU_EVENTS;
extern const unsigned long VOLT_KVM_GET_MP_STATE;
extern const unsigned long VOLT_KVM_SET_MP_STATE;
extern const unsigned long VOLT_KVM_GET_DEBUGREGS;
extern const unsigned long VOLT_KVM_SET_DEBUGREGS;
extern const unsigned long VOLT_KVM_GET_FPU;
extern const unsigned long VOLT_KVM_GET_IRQCHIP;
extern const unsigned long VOLT_KVM_SET_IRQCHIP;
extern const unsigned long VOLT_KVM_GET_PIT2;
extern const unsigned long VOLT_KVM_SET_PIT2;
extern const unsigned long VOLT_KVM_GET_TSC_KHZ;
extern const unsigned long VOLT_KVM_SET_TSC_KHZ;

/// Allocates a kvm_cpuid2 with room for `n` entries (free with free()). NULL on ENOMEM.
struct kvm_cpuid2 *volt_cpuid2_alloc(uint32_t n);
/// Allocates a kvm_msrs with room for `n` entries (free with free()).
struct kvm_msrs *volt_msrs_alloc(uint32_t n);
/// Allocates a kvm_msr_list with room for `n` indices (free with free()).
struct kvm_msr_list *volt_msr_list_alloc(uint32_t n);
uint32_t *volt_msr_list_indices(struct kvm_msr_list *l);
/// Pointer to the first entry of the flexible arrays above.
struct kvm_cpuid_entry2 *volt_cpuid2_entries(struct kvm_cpuid2 *c);
struct kvm_msr_entry *volt_msrs_entries(struct kvm_msrs *m);

/// The vCPU's TSC offset attribute (group KVM_VCPU_TSC_CTRL, KVM_VCPU_TSC_OFFSET): a
/// kvm_device_attr pointing at `value`, for KVM_GET_DEVICE_ATTR / KVM_SET_DEVICE_ATTR.
struct kvm_device_attr volt_tsc_offset_attr(uint64_t *value);
/// The host's TSC (rdtsc).
static inline uint64_t volt_rdtsc(void) {
    uint32_t lo, hi;
    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return ((uint64_t)hi << 32) | lo;
}
