import Foundation

/// The scenarios that ship with pvm (`Sources/Regression/Scenarios/*.scenario`, a SwiftPM
/// resource), found next to the executable wherever it is installed.
public enum BuiltInSuite {
    /// The directory holding the built-in scenario files, if the resource bundle is there.
    public static var directory: String? {
        Bundle.module.resourceURL.map { $0.appendingPathComponent("Scenarios").path }
    }

    /// Every `*.scenario` file directly in `directory`, sorted by name.
    public static func files(in directory: String) -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return names.filter { $0.hasSuffix(".scenario") }.sorted().map { directory + "/" + $0 }
    }
}
