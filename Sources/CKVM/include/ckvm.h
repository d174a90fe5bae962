#ifndef CKVM_H
#define CKVM_H

/// The C side of pvm's KVM layer: the one `ioctl` call (variadic, so Swift cannot call it
/// directly), the uAPI structs of the system's <linux/kvm.h> (Linux 6.1 on the build machine),
/// and the uAPI numbers that are newer than those headers (values from Linux 6.18's
/// include/uapi/linux/kvm.h; Documentation/virt/kvm/api.rst sections 4 and 5).

#include <linux/kvm.h>
#include <stdint.h>

/// `ioctl(fd, request, arg)` with a pointer argument. Returns the ioctl's result; on -1 the
/// caller reads errno.
int pvm_kvm_ioctl(int fd, unsigned long request, void *arg);

/// `ioctl(fd, request, value)` for the `_IO` requests whose argument is an integer
/// (KVM_CREATE_VM's type, KVM_CHECK_EXTENSION's capability, KVM_CREATE_VCPU's id).
int pvm_kvm_ioctl_value(int fd, unsigned long request, unsigned long value);

/// `KVM_RUN` on a vCPU fd.
int pvm_kvm_run(int vcpu_fd);

// MARK: uAPI numbers newer than the 6.1 headers

#define PVM_KVM_EXIT_MEMORY_FAULT 39
#define PVM_KVM_CAP_MEMORY_FAULT_INFO 232
#define PVM_KVM_CAP_GUEST_MEMFD 234
#define PVM_KVM_CAP_GUEST_MEMFD_FLAGS 244

/// `kvm_run.memory_fault` (Linux 6.8+): valid only when KVM_RUN returned -1 with EFAULT or
/// EHWPOISON and `exit_reason` is PVM_KVM_EXIT_MEMORY_FAULT.
struct pvm_kvm_memory_fault {
    uint64_t flags;
    uint64_t gpa;
    uint64_t size;
};

static inline const struct pvm_kvm_memory_fault *pvm_kvm_run_memory_fault(const struct kvm_run *run) {
    // The exit union starts at offset 32 in every kvm_run layout.
    return (const struct pvm_kvm_memory_fault *)((const char *)run + 32);
}

// MARK: Request numbers (macros Swift cannot import)

static const unsigned long PVM_KVM_GET_API_VERSION = KVM_GET_API_VERSION;
static const unsigned long PVM_KVM_CREATE_VM = KVM_CREATE_VM;
static const unsigned long PVM_KVM_CHECK_EXTENSION = KVM_CHECK_EXTENSION;
static const unsigned long PVM_KVM_GET_VCPU_MMAP_SIZE = KVM_GET_VCPU_MMAP_SIZE;
static const unsigned long PVM_KVM_CREATE_VCPU = KVM_CREATE_VCPU;
static const unsigned long PVM_KVM_SET_USER_MEMORY_REGION = KVM_SET_USER_MEMORY_REGION;
static const unsigned long PVM_KVM_RUN = KVM_RUN;
static const unsigned long PVM_KVM_GET_REGS = KVM_GET_REGS;
static const unsigned long PVM_KVM_SET_REGS = KVM_SET_REGS;
static const unsigned long PVM_KVM_GET_SREGS = KVM_GET_SREGS;
static const unsigned long PVM_KVM_SET_SREGS = KVM_SET_SREGS;
static const unsigned long PVM_KVM_TRANSLATE = KVM_TRANSLATE;
#if defined(__x86_64__)
static const unsigned long PVM_KVM_GET_SUPPORTED_CPUID = KVM_GET_SUPPORTED_CPUID;
static const unsigned long PVM_KVM_SET_CPUID2 = KVM_SET_CPUID2;
static const unsigned long PVM_KVM_SET_TSS_ADDR = KVM_SET_TSS_ADDR;
static const unsigned long PVM_KVM_SET_IDENTITY_MAP_ADDR = KVM_SET_IDENTITY_MAP_ADDR;
#endif

/// A `kvm_cpuid2` with room for `capacity` entries, zeroed, or NULL. Free with `free`.
struct kvm_cpuid2 *pvm_kvm_cpuid2_alloc(uint32_t capacity);

#endif
