import ArgumentParser

struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Boot a guest kernel."
    )

    func run() throws {
        throw ValidationError("not implemented yet")
    }
}
