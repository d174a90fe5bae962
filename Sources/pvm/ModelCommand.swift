import ArgumentParser
import ModelScript
#if canImport(Glibc)
import Glibc
#endif

/// `pvm model`: run a script of EL2 operations and print each line with its result.
struct ModelCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "model",
        abstract: "Run a script of ownership operations against EL2 and print each result.",
        discussion: """
            Reads SCRIPT (or standard input; interactive when it is a terminal), one operation a \
            line, and prints each line followed by ' -> ' and its result: 0 or an errno name \
            such as -EPERM. Exit status: 0 when every line ran, 1 when any line was malformed, \
            2 when the script could not be read. 'help' lists the operations; \
            docs/model-language.md documents them.
            """
    )

    @Argument(help: ArgumentHelp("Script file; standard input when absent.", valueName: "SCRIPT"))
    var script: String?

    @OptionGroup var machine: MachineOptions

    func run() throws {
        let session: ModelSession
        do {
            session = try ModelSession(try machine.configuration())
        } catch let e as ModelSession.SetupError {
            throw ValidationError(e.description)
        }
        if let script {
            guard let text = readFile(script) else {
                printError("pvm model: cannot read script '\(script)': \(String(cString: strerror(errno)))")
                throw ExitCode(2)
            }
            let lines = ModelSession.lines(of: text)
            for (i, line) in lines.enumerated() { emit(session.run(line: line, number: i + 1)) }
        } else {
            let interactive = isatty(0) == 1
            if interactive { print("pvm model: \(machine.memory) RAM, \(machine.ipaBits)-bit IPA. Type help for operations.") }
            var number = 0
            var input = LineReader(fd: 0)
            while true {
                if interactive { print("pvm> ", terminator: ""); fflush(nil) }
                let line: String?
                do { line = try input.next() } catch {
                    switch error {
                    case let .lineTooLong(limit): printError("pvm model: line \(number + 1) of standard input is longer than \(limit) bytes")
                    case let .unreadable(e): printError("pvm model: cannot read standard input: \(String(cString: strerror(e)))")
                    }
                    throw ExitCode(2)
                }
                guard let line else { break }
                number += 1
                emit(session.run(line: line, number: number))
            }
        }
        if session.malformedLines > 0 {
            printError("pvm model: \(session.malformedLines) malformed line\(session.malformedLines == 1 ? "" : "s")")
            throw ExitCode(1)
        }
    }

    private func emit(_ result: ModelSession.LineResult?) {
        guard let result else { return }
        print(result.text)
        if result.isMalformed, isatty(1) == 0 { printError(result.text) }
    }
}


/// Writes one line to standard error (the CLI's only direct write(2)).
func printError(_ message: String, newline: Bool = true) {
    fflush(nil)
    var line = message + (newline ? "\n" : "")
    line.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
}
