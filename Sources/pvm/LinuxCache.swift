#if canImport(Glibc)
import Glibc
#endif
import Tracing

/// The Linux kernels scripts/fetch-linux.sh caches: its manifest
/// (`$PVM_CACHE`, else `$XDG_CACHE_HOME/pvm`, else `~/.cache/pvm`, then `linux/current`) names
/// the Debian kernel Image and the initramfs it built. `pvm test`'s `image linux:debian` and
/// `pvm bench linux` find them here.
struct LinuxCache {
    let kernel: String
    let initrd: String
    let release: String

    /// The cache directory the script uses.
    static var directory: String {
        let env = { (name: String) -> String? in getenv(name).map { String(cString: $0) }.flatMap { $0.isEmpty ? nil : $0 } }
        if let cache = env("PVM_CACHE") { return cache + "/linux" }
        if let xdg = env("XDG_CACHE_HOME") { return xdg + "/pvm/linux" }
        return (env("HOME") ?? "/root") + "/.cache/pvm/linux"
    }

    /// Why there is no cached kernel `name`, for skip messages.
    static func missing(_ name: String) -> String {
        guard names.contains(name) else { return "no kernel '\(name)': pvm knows \(names.joined(separator: ", "))" }
        return "no cached \(name) kernel in \(directory) (scripts/fetch-linux.sh downloads Debian's and builds the initramfs"
            + (name == "pkvm" ? "; scripts/build-pkvm-guest-kernel.sh builds the pKVM guest)" : ")")
    }

    /// The kernels a scenario can name: Debian's, and the pKVM guest built from Debian's
    /// linux-source (scripts/build-pkvm-guest-kernel.sh), both with fetch-linux.sh's initramfs.
    static let names = ["debian", "pkvm"]

    /// The cached kernel `name`, or nil.
    static func find(_ name: String) -> LinuxCache? {
        guard let debian = manifest(directory + "/current"), let kernel = debian["kernel"], let initrd = debian["initrd"] else { return nil }
        let i = directory + "/" + initrd
        guard access(i, R_OK) == 0 else { return nil }
        switch name {
        case "debian":
            let k = directory + "/" + kernel
            guard access(k, R_OK) == 0 else { return nil }
            return LinuxCache(kernel: k, initrd: i, release: debian["kernel_release"] ?? "?")
        case "pkvm":
            // The Image the build script last answered with (its `current` names it).
            let root = directory + "/pkvm-guest"
            guard let image = manifest(root + "/current")?["kernel"], !image.contains(".."),
                  access(root + "/" + image, R_OK) == 0 else { return nil }
            let build = image.split(separator: "/").dropLast().joined(separator: "/")
            return LinuxCache(kernel: root + "/" + image, initrd: i, release: manifest(root + "/" + build + "/manifest")?["kernel_release"] ?? "?")
        default:
            return nil
        }
    }

    /// A `name=value` file (comments start with #), read with a bound.
    private static func manifest(_ path: String) -> [String: String]? {
        guard case let .success(bytes) = TextFile.read(path, limit: 1 << 16) else { return nil }
        var fields: [String: String] = [:]
        for line in String(decoding: bytes, as: UTF8.self).split(separator: "\n") where !line.hasPrefix("#") {
            guard let eq = line.firstIndex(of: "=") else { continue }
            fields[String(line[..<eq])] = String(line[line.index(after: eq)...])
        }
        return fields
    }
}
