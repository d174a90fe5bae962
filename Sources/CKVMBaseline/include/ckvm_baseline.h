#ifndef CKVM_BASELINE_H
#define CKVM_BASELINE_H

#include <stddef.h>
#include <stdint.h>

/// The baseline of `pvm bench hypercall`: the smallest C program that makes a KVM guest exit to
/// userspace on a port write and resumes it, `iterations` times. One VM, one vCPU running
/// `out $0xf1, %eax; jmp .-2` (the port pvm's hypercall conduit uses), no sync registers, no
/// register reads: just KVM_RUN -> KVM_EXIT_IO -> KVM_RUN. With `long_mode_ring3` the vCPU
/// runs in the state pvm gives its guests (64-bit, CPL 3, the port allowed by the TSS I/O
/// bitmap), so the exits are the same as pvm's; otherwise in real mode at CPL 0.
///
/// On success returns 0 and stores the time spent in the loop (CLOCK_MONOTONIC, ns). On failure
/// returns -1 and writes a message naming the failing call into `error` (`error_size` bytes).
int pvm_baseline_pio_loop(uint64_t iterations, int long_mode_ring3, uint64_t *elapsed_ns, char *error, size_t error_size);

#endif
