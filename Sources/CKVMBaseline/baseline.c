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

#define GUEST_ADDR 0x4000
#define GUEST_SIZE 0x5000

static int fail(char *error, size_t size, const char *what) {
    snprintf(error, size, "%s: %s", what, strerror(errno));
    return -1;
}

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Long mode at CPL 3 with a TSS I/O bitmap allowing ports 0xf1-0xf4: the state pvm gives its
 * guests (docs/abi.md). Memory: GDT + TSS at 0x0, PML4 0x1000, PDPT 0x2000, PD 0x3000 (one
 * 2 MiB user page at 0), code at 0x4000. */
static int setup_long_mode_ring3(int vcpu, unsigned char *mem, char *error, size_t error_size) {
    uint64_t *gdt = (uint64_t *)mem;
    gdt[1] = 0x00af9b000000ffffull;
    gdt[2] = 0x00cf93000000ffffull;
    gdt[3] = 0x88ull | (0x800ull << 16) | (0x8bull << 40);
    gdt[5] = 0x00affb000000ffffull;
    gdt[6] = 0x00cff3000000ffffull;
    unsigned char *tss = mem + 0x800;
    tss[0x66] = 0x68;
    memset(tss + 0x68, 0xff, 33);
    for (int port = 0xf1; port < 0xf5; port++) tss[0x68 + port / 8] &= (unsigned char)~(1u << (port % 8));
    ((uint64_t *)(mem + 0x1000))[0] = 0x2007;
    ((uint64_t *)(mem + 0x2000))[0] = 0x3007;
    ((uint64_t *)(mem + 0x3000))[0] = 0x87;
    struct kvm_sregs s;
    if (ioctl(vcpu, KVM_GET_SREGS, &s) < 0) return fail(error, error_size, "KVM_GET_SREGS");
    struct kvm_segment cs = { .limit = 0xffffffff, .selector = 0x2b, .type = 0xb, .present = 1, .dpl = 3, .s = 1, .l = 1, .g = 1 };
    struct kvm_segment ds = { .limit = 0xffffffff, .selector = 0x33, .type = 3, .present = 1, .dpl = 3, .db = 1, .s = 1, .g = 1 };
    struct kvm_segment tr = { .base = 0x800, .limit = 0x88, .selector = 0x18, .type = 0xb, .present = 1 };
    s.cs = cs;
    s.ds = s.es = s.fs = s.gs = s.ss = ds;
    s.tr = tr;
    s.ldt = (struct kvm_segment){ .unusable = 1 };
    s.gdt.base = 0; s.gdt.limit = 55;
    s.idt.base = 0; s.idt.limit = 0;
    s.cr0 = 0x80000033; s.cr3 = 0x1000; s.cr4 = 0x620; s.efer = 0xd00;
    if (ioctl(vcpu, KVM_SET_SREGS, &s) < 0) return fail(error, error_size, "KVM_SET_SREGS");
    return 0;
}

int pvm_baseline_pio_loop(uint64_t iterations, int long_mode_ring3, uint64_t *elapsed_ns, char *error, size_t error_size) {
    int result = -1, kvm = -1, vm = -1, vcpu = -1;
    void *mem = MAP_FAILED, *run_map = MAP_FAILED;
    long run_size = 0;

    if ((kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC)) < 0) { fail(error, error_size, "open /dev/kvm"); goto out; }
    if ((vm = ioctl(kvm, KVM_CREATE_VM, 0)) < 0) { fail(error, error_size, "KVM_CREATE_VM"); goto out; }
    mem = mmap(NULL, GUEST_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) { fail(error, error_size, "mmap guest page"); goto out; }
    // out $0xf1, %ax ; jmp back to the out
    static const unsigned char code[] = { 0xe7, 0xf1, 0xeb, 0xfc };
    memcpy((unsigned char *)mem + GUEST_ADDR, code, sizeof(code));
    struct kvm_userspace_memory_region region = {
        .slot = 0, .guest_phys_addr = 0, .memory_size = GUEST_SIZE, .userspace_addr = (uint64_t)mem,
    };
    if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &region) < 0) { fail(error, error_size, "KVM_SET_USER_MEMORY_REGION"); goto out; }
    if ((vcpu = ioctl(vm, KVM_CREATE_VCPU, 0)) < 0) { fail(error, error_size, "KVM_CREATE_VCPU"); goto out; }
    if ((run_size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0)) < 0) { fail(error, error_size, "KVM_GET_VCPU_MMAP_SIZE"); goto out; }
    run_map = mmap(NULL, (size_t)run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
    if (run_map == MAP_FAILED) { fail(error, error_size, "mmap kvm_run"); goto out; }
    struct kvm_run *run = run_map;

    if (long_mode_ring3) {
        if (setup_long_mode_ring3(vcpu, mem, error, error_size) < 0) goto out;
    } else {
        struct kvm_sregs sregs;
        if (ioctl(vcpu, KVM_GET_SREGS, &sregs) < 0) { fail(error, error_size, "KVM_GET_SREGS"); goto out; }
        sregs.cs.base = 0;
        sregs.cs.selector = 0;
        if (ioctl(vcpu, KVM_SET_SREGS, &sregs) < 0) { fail(error, error_size, "KVM_SET_SREGS"); goto out; }
    }
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
    if (mem != MAP_FAILED) munmap(mem, GUEST_SIZE);
    if (vcpu >= 0) close(vcpu);
    if (vm >= 0) close(vm);
    if (kvm >= 0) close(kvm);
    return result;
}
