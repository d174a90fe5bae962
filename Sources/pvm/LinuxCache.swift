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
        "no cached \(name) kernel in \(directory) (scripts/fetch-linux.sh downloads Debian's and builds the initramfs)"
    }

    /// The cached kernel `name` ("debian"), or nil.
    static func find(_ name: String) -> LinuxCache? {
        guard name == "debian" else { return nil }
        guard case let .success(bytes) = TextFile.read(directory + "/current", limit: 1 << 16) else { return nil }
        var fields: [String: String] = [:]
        for line in String(decoding: bytes, as: UTF8.self).split(separator: "\n") where !line.hasPrefix("#") {
            guard let eq = line.firstIndex(of: "=") else { continue }
            fields[String(line[..<eq])] = String(line[line.index(after: eq)...])
        }
        guard let kernel = fields["kernel"], let initrd = fields["initrd"] else { return nil }
        let k = directory + "/" + kernel, i = directory + "/" + initrd
        guard access(k, R_OK) == 0, access(i, R_OK) == 0 else { return nil }
        return LinuxCache(kernel: k, initrd: i, release: fields["kernel_release"] ?? "?")
    }
}
