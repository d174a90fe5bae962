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
            Reads SCRIPT ('-' or absent: standard input; interactive when it is a terminal), one operation a \
            line, and prints each line followed by ' -> ' and its result: 0 or an errno name \
            such as -EPERM. 'quit' or 'exit' ends it. Interactively it has line editing and \
            history ($HOME/.pvm_model_history), and a malformed line is reported without changing \
            the exit status. Exit status: 0 when every line ran, 1 when any line of a script was \
            malformed, 2 when the script could not be read. 'help' lists the operations; \
            docs/model-language.md documents them.
            """
    )

    @Argument(help: ArgumentHelp("Script file; standard input when absent.", valueName: "SCRIPT"))
    var script: String?

    @OptionGroup var machine: MachineOptions

    @Flag(name: .long, help: "Print each line's result as one JSON object (line, op, result, ok), one per line.")
    var json = false

    func run() throws {
        let session: ModelSession
        do {
            session = try ModelSession(try machine.configuration())
        } catch let e as ModelSession.SetupError {
            throw ValidationError(e.description)
        }
        if let script, script != "-" {
            guard let text = readFile(script) else {
                printError("pvm model: cannot read script '\(script)': \(String(cString: strerror(errno)))")
                throw ExitCode(2)
            }
            let lines = ModelSession.lines(of: text)
            for (i, line) in lines.enumerated() {
                if Self.isQuit(line) { break }
                emit(session.run(line: line, number: i + 1))
            }
        } else if isatty(0) == 1 && isatty(1) == 1 {
            // Interactive: a line editor with history; a typo is reported, not an exit status.
            print("pvm model: \(machine.memory) RAM, \(machine.ipaBits)-bit IPA. Type help for operations, quit to leave.")
            var editor = LineEditor()
            var number = 0
            while let line = editor.readLine(prompt: "pvm> ") {
                number += 1
                if Self.isQuit(line) { break }
                emit(session.run(line: line, number: number))
            }
            return
        } else {
            var number = 0
            var input = LineReader(fd: 0)
            while true {
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
                if Self.isQuit(line) { break }
                emit(session.run(line: line, number: number))
            }
        }
        if session.malformedLines > 0 {
            printError("pvm model: \(session.malformedLines) malformed line\(session.malformedLines == 1 ? "" : "s")")
            throw ExitCode(1)
        }
    }

    /// `quit` or `exit` (alone on a line) ends a session or a script.
    static func isQuit(_ line: String) -> Bool {
        let code = line.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
        let words = code.split(whereSeparator: { $0 == " " || $0 == "\t" })
        return words.count == 1 && (words[0] == "quit" || words[0] == "exit")
    }

    private func emit(_ result: ModelSession.LineResult?) {
        guard let result else { return }
        print(json ? result.json : result.text)
        if result.isMalformed, isatty(1) == 0 { printError(result.text) }
    }
}


/// Writes one line to standard error (the CLI's only direct write(2)).
func printError(_ message: String, newline: Bool = true) {
    fflush(nil)
    var line = message + (newline ? "\n" : "")
    line.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
}
