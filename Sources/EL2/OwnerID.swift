/// Who an annotated (invalid) host stage-2 entry says owns a page: pKVM's
/// `enum pkvm_component_id` in newest mainline (`PKVM_ID_HOST` = 0, `PKVM_ID_HYP` = 1,
/// `PKVM_ID_GUEST` = 2). The value fits the 3-bit owner field of the annotation.
public enum OwnerID: UInt8, Sendable, CustomStringConvertible {
    case host = 0
    case hyp = 1
    case guest = 2

    public var description: String {
        switch self {
        case .host: "host"
        case .hyp: "hyp"
        case .guest: "guest"
        }
    }
}
