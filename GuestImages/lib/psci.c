/* PSCI helpers over the hypercall conduit (docs/abi.md, "Functions"). */
#include "pvm_guest.h"

void psci_system_off(void)
{
    console_flush();
    smccc_call(PSCI_SYSTEM_OFF_FID, 0, 0, 0);
    cpu_stop();  /* unreachable: the VMM never resumes a powered-off vCPU */
}

void psci_system_reset(void)
{
    console_flush();
    smccc_call(PSCI_SYSTEM_RESET_FID, 0, 0, 0);
    cpu_stop();  /* unreachable: the VMM never resumes a powered-off vCPU */
}

void psci_cpu_off(void)
{
    smccc_call(PSCI_CPU_OFF_FID, 0, 0, 0);
    cpu_stop();  /* unreachable: the VMM never resumes a powered-off vCPU */
}

s64 psci_cpu_on(u64 target_mpidr, u64 entry, u64 context)
{
    return smccc_call0(PSCI_CPU_ON_FID, target_mpidr, entry, context);
}

s64 psci_affinity_info(u64 target_mpidr)
{
    return smccc_call0(PSCI_AFFINITY_INFO_FID, target_mpidr, 0, 0);
}
