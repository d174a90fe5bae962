import Foundation
import PackagePlugin

/// Builds the firmware and guest images from `Firmware/` and `GuestImages/` with the toolchain's
/// clang and ld.lld (scripts/build-guests.sh), and hands the target a generated Swift file that
/// embeds them, so a clean clone builds everything and no binary is committed.
@main
struct GuestImageBuilder: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        let root = context.package.directoryURL
        let script = root.appending(path: "scripts/build-guests.sh")
        let output = context.pluginWorkDirectoryURL.appending(path: "EmbeddedImageData.swift")
        var inputs = [script]
        for directory in ["Firmware", "GuestImages", "Bench"] {
            let base = root.appending(path: directory)
            guard let walker = FileManager.default.enumerator(at: base, includingPropertiesForKeys: [.isRegularFileKey]) else { continue }
            for case let url as URL in walker where (try? url.resourceValues(forKeys: [.isRegularFileKey]).isRegularFile) == true {
                inputs.append(url)
            }
        }
        var environment: [String: String] = [:]
        if let clang = try? context.tool(named: "clang") { environment["CLANG"] = clang.url.path }
        if let lld = try? context.tool(named: "ld.lld") { environment["LD_LLD"] = lld.url.path }
        return [
            .buildCommand(
                displayName: "Building firmware and guest images",
                executable: URL(fileURLWithPath: "/bin/sh"),
                arguments: [script.path, output.path, context.pluginWorkDirectoryURL.appending(path: "elf").path],
                environment: environment,
                inputFiles: inputs,
                outputFiles: [output]
            )
        ]
    }
}
