import EL2

/// The guest ABI in a model session: a guest's hypercall through EL2's entry point
/// (`Hypervisor.guestHypercall`), without booting a guest, and the host's vCPU loads.
extension ModelOperation {
    static let guestABI: [ModelOperation] = [
        .init(name: "hvc", synopsis: "VM FID [X1 [X2 [X3 [VCPU]]]]",
              summary: "a guest HVC: x0..x3 it returns, where it was answered, what the host must do",
              arity: 2...6) { a throws(ModelLineError) in
            let vm = try a.vm(0)
            let fid = try a.function(1)
            var x: [UInt64] = [0, 0, 0]
            for i in 0 ..< 3 where a.count > 2 + i { x[i] = try a.number(2 + i, "X\(i + 1)") }
            let vcpu = a.count == 6 ? try a.number(5, "VCPU") : 0
            guard vcpu < UInt64(Hypervisor.maxVCPUsPerVM) else { throw ModelLineError("hvc: VCPU \(vcpu) is out of range") }
            let call = a.session.hypervisor.guestHypercall(vm: vm, vcpu: Int(vcpu), SMCCCRegisters(fid, x[0], x[1], x[2]))
            var text = call.description
            if let t = call.transition {
                text += "\n  \(t.name) gfn \(t.gfn): " + (t.error.map(\.description) ?? "\(t.done) of \(t.pages) pages")
            }
            return text
        },
        .init(name: "vcpu_load", synopsis: "VM VCPU", summary: "pkvm_load_hyp_vcpu: the host runs the vCPU (ON_PENDING becomes ON)",
              arity: 2...2) { a throws(ModelLineError) in
            let vm = try a.vm(0)
            let index = try a.number(1, "VCPU")
            guard index < UInt64(Hypervisor.maxVCPUsPerVM) else { return HypError.EINVAL.description }
            return errno { () throws(HypError) in try a.session.hypervisor.loadVCPU(vm: vm, vcpu: Int(index)) }
        },
        .init(name: "vcpu_put", synopsis: "VM VCPU", summary: "pkvm_put_hyp_vcpu", arity: 2...2) { a throws(ModelLineError) in
            let vm = try a.vm(0)
            let index = try a.number(1, "VCPU")
            guard index < UInt64(Hypervisor.maxVCPUsPerVM) else { return "0" }
            a.session.hypervisor.putVCPU(vm: vm, vcpu: Int(index))
            return "0"
        },
        .init(name: "vcpu_state", synopsis: "VM VCPU", summary: "a vCPU's PSCI power state (off, onPending, on)",
              arity: 2...2) { a throws(ModelLineError) in
            let vm = try a.vm(0)
            let index = try a.number(1, "VCPU")
            guard index < UInt64(Hypervisor.maxVCPUsPerVM),
                  let state = a.session.hypervisor.powerState(vm: vm, vcpu: Int(index)) else { return HypError.EINVAL.description }
            return state.rawValue
        },
    ]
}

extension ModelArguments {
    /// A function ID: a number, or a name from the ABI table (`MEM_SHARE`, `PSCI_CPU_ON`, ...).
    func function(_ i: Int) throws(ModelLineError) -> UInt64 {
        let t = String(tokens[i])
        if let f = SMCCCFunction.allCases.first(where: { $0.name == t.uppercased() }) { return UInt64(f.rawValue) }
        return try number(i, "FID")
    }
}
