#include "ckvm_baseline.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define GUEST_ADDR 0x1000

static int fail(char *error, size_t size, const char *what) {
    snprintf(error, size, "%s: %s", what, strerror(errno));
    return -1;
}

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int pvm_baseline_pio_loop(uint64_t iterations, uint64_t *elapsed_ns, char *error, size_t error_size) {
    int result = -1, kvm = -1, vm = -1, vcpu = -1;
    void *mem = MAP_FAILED, *run_map = MAP_FAILED;
    long run_size = 0;

    if ((kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC)) < 0) { fail(error, error_size, "open /dev/kvm"); goto out; }
    if ((vm = ioctl(kvm, KVM_CREATE_VM, 0)) < 0) { fail(error, error_size, "KVM_CREATE_VM"); goto out; }
    mem = mmap(NULL, 0x1000, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) { fail(error, error_size, "mmap guest page"); goto out; }
    // out $0xf1, %ax ; jmp back to the out
    static const unsigned char code[] = { 0xe7, 0xf1, 0xeb, 0xfc };
    memcpy(mem, code, sizeof(code));
    struct kvm_userspace_memory_region region = {
        .slot = 0, .guest_phys_addr = GUEST_ADDR, .memory_size = 0x1000, .userspace_addr = (uint64_t)mem,
    };
    if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &region) < 0) { fail(error, error_size, "KVM_SET_USER_MEMORY_REGION"); goto out; }
    if ((vcpu = ioctl(vm, KVM_CREATE_VCPU, 0)) < 0) { fail(error, error_size, "KVM_CREATE_VCPU"); goto out; }
    if ((run_size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0)) < 0) { fail(error, error_size, "KVM_GET_VCPU_MMAP_SIZE"); goto out; }
    run_map = mmap(NULL, (size_t)run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
    if (run_map == MAP_FAILED) { fail(error, error_size, "mmap kvm_run"); goto out; }
    struct kvm_run *run = run_map;

    struct kvm_sregs sregs;
    if (ioctl(vcpu, KVM_GET_SREGS, &sregs) < 0) { fail(error, error_size, "KVM_GET_SREGS"); goto out; }
    sregs.cs.base = 0;
    sregs.cs.selector = 0;
    if (ioctl(vcpu, KVM_SET_SREGS, &sregs) < 0) { fail(error, error_size, "KVM_SET_SREGS"); goto out; }
    struct kvm_regs regs = { .rip = GUEST_ADDR, .rflags = 0x2 };
    if (ioctl(vcpu, KVM_SET_REGS, &regs) < 0) { fail(error, error_size, "KVM_SET_REGS"); goto out; }

    // One warm-up exit outside the timed loop, so page faults on first entry are not counted.
    if (ioctl(vcpu, KVM_RUN, 0) < 0) { fail(error, error_size, "KVM_RUN"); goto out; }
    uint64_t start = now_ns();
    for (uint64_t i = 0; i < iterations; i++) {
        if (ioctl(vcpu, KVM_RUN, 0) < 0) { fail(error, error_size, "KVM_RUN"); goto out; }
        if (run->exit_reason != KVM_EXIT_IO || run->io.port != 0xf1) {
            snprintf(error, error_size, "unexpected exit %u", run->exit_reason);
            goto out;
        }
    }
    *elapsed_ns = now_ns() - start;
    result = 0;
out:
    if (run_map != MAP_FAILED) munmap(run_map, (size_t)run_size);
    if (mem != MAP_FAILED) munmap(mem, 0x1000);
    if (vcpu >= 0) close(vcpu);
    if (vm >= 0) close(vm);
    if (kvm >= 0) close(kvm);
    return result;
}
