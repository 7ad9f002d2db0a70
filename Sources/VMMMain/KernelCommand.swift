import ArgumentParser

struct KernelCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kernel",
        abstract: "Build, list and verify guest kernels.",
        subcommands: [KernelBuildCommand.self, KernelListCommand.self, KernelVerifyCommand.self]
    )
}
