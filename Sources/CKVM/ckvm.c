#include "ckvm.h"

#include <stdlib.h>
#include <sys/ioctl.h>

int pvm_kvm_ioctl(int fd, unsigned long request, void *arg) {
    return ioctl(fd, request, arg);
}

int pvm_kvm_ioctl_value(int fd, unsigned long request, unsigned long value) {
    return ioctl(fd, request, value);
}

int pvm_kvm_run(int vcpu_fd) {
    return ioctl(vcpu_fd, KVM_RUN, 0);
}

struct kvm_cpuid2 *pvm_kvm_cpuid2_alloc(uint32_t capacity) {
    struct kvm_cpuid2 *cpuid = calloc(1, sizeof(*cpuid) + (size_t)capacity * sizeof(struct kvm_cpuid_entry2));
    if (cpuid) cpuid->nent = capacity;
    return cpuid;
}
