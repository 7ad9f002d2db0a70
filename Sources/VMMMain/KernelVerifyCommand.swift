import ArgumentParser
@preconcurrency import Glibc
import VMM

/// `volt-vmm kernel verify FILE`: says whether volt-vmm can boot a kernel file and how.
struct KernelVerifyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Check that a kernel file is bootable and describe it.",
        discussion: "Exit status 0 when volt-vmm can boot FILE, 1 (with the reason) when it cannot."
    )

    @Argument(help: "An ELF vmlinux with a PVH entry note, or a 64-bit bzImage.")
    var file: String

    func run() throws {
        do {
            print(try KernelImage(contentsOf: file).summary)
        } catch {
            fputs("error: \(error)\n", stderr)
            throw ExitCode(1)
        }
    }
}
