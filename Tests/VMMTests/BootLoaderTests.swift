import Foundation
import Testing
@testable import VMM

@Suite struct BootLoaderTests {
    @Test func pvhBootEndToEnd() throws {
        let dir = try TemporaryDirectory()
        let kernel = try dir.file("vmlinux", TestELF.vmlinux(entry: 0x100_0f20).bytes())
        let initrd = try dir.file("initrd.cpio", cpioNewc)
        let memory = try GuestMemory(size: 64 << 20)
        let entry = try BootLoader.prepare(memory: memory, kernelPath: kernel, initrdPath: initrd,
                                           cmdline: "console=ttyS0 reboot=k")
        #expect(entry == .pvh(entry: 0x100_0f20, startInfo: Layout.pvhStartInfoAddress))
        #expect(try memory.read(at: 0x100_0000, count: 2) == [0xaa, 0xaa])
        let cmdline = Array("console=ttyS0 reboot=k".utf8) + [0]
        #expect(try memory.read(at: Layout.cmdlineAddress, count: cmdline.count) == cmdline)
        let info = Layout.pvhStartInfoAddress
        #expect(try memory.readValue(UInt32.self, at: info) == 0x336e_c578)
        #expect(try memory.readValue(UInt64.self, at: info + 24) == Layout.cmdlineAddress)
        #expect(try memory.readValue(UInt32.self, at: info + 12) == 1)
        let module = try memory.readValue(UInt64.self, at: info + 16)
        let initrdAddress = try memory.readValue(UInt64.self, at: module)
        #expect(initrdAddress == (64 << 20) - 0x1000)
        #expect(try memory.readValue(UInt64.self, at: module + 8) == UInt64(cpioNewc.count))
        #expect(try memory.read(at: initrdAddress, count: cpioNewc.count) == cpioNewc)
    }

    @Test func bzImageBootEndToEnd() throws {
        let dir = try TemporaryDirectory()
        let kernel = try dir.file("bzImage", TestBzImage().bytes())
        let initrd = try dir.file("initrd.gz", [0x1f, 0x8b, 8, 0] + [UInt8](repeating: 7, count: 0x3000))
        let memory = try GuestMemory(size: 64 << 20)
        let entry = try BootLoader.prepare(memory: memory, kernelPath: kernel, initrdPath: initrd, cmdline: "console=ttyS0")
        #expect(entry == .linux64(entry: 0x10_0200, zeroPage: Layout.zeroPageAddress))
        let zp = Layout.zeroPageAddress
        #expect(try memory.readValue(UInt32.self, at: zp + 0x228) == UInt32(Layout.cmdlineAddress))
        #expect(try memory.readValue(UInt32.self, at: zp + 0x218) == UInt32((64 << 20) - 0x4000))
        #expect(try memory.readValue(UInt32.self, at: zp + 0x21c) == 0x3004)
        #expect(try memory.readValue(UInt8.self, at: zp + 0x1e8) == UInt8(E820Entry.map(for: memory.regions).count))
        #expect(try memory.read(at: Layout.cmdlineAddress, count: 14) == Array("console=ttyS0\0".utf8))
    }

    @Test func noInitrd() throws {
        let dir = try TemporaryDirectory()
        let kernel = try dir.file("bzImage", TestBzImage().bytes())
        let memory = try GuestMemory(size: 64 << 20)
        _ = try BootLoader.prepare(memory: memory, kernelPath: kernel, initrdPath: nil, cmdline: "")
        #expect(try memory.readValue(UInt32.self, at: Layout.zeroPageAddress + 0x218) == 0)
        #expect(try memory.readValue(UInt32.self, at: Layout.zeroPageAddress + 0x21c) == 0)
        #expect(try memory.read(at: Layout.cmdlineAddress, count: 1) == [0])
    }

    @Test func cmdlineSizeIsEnforced() throws {
        let dir = try TemporaryDirectory()
        let kernel = try dir.file("bzImage", TestBzImage(cmdlineSize: 16).bytes())
        let memory = try GuestMemory(size: 64 << 20)
        #expect(throws: BootLoaderError.cmdlineTooLong(length: 17, limit: 16)) {
            try BootLoader.prepare(memory: memory, kernelPath: kernel, initrdPath: nil, cmdline: String(repeating: "x", count: 17))
        }
        _ = try BootLoader.prepare(memory: memory, kernelPath: kernel, initrdPath: nil, cmdline: String(repeating: "x", count: 16))
        #expect(throws: BootLoaderError.cmdlineContainsNUL) {
            try BootLoader.prepare(memory: memory, kernelPath: kernel, initrdPath: nil, cmdline: "a\0b")
        }
        let pvh = try dir.file("vmlinux", TestELF.vmlinux().bytes())
        let tooLong = String(repeating: "y", count: Int(Layout.cmdlineMaxSize))
        #expect(throws: BootLoaderError.cmdlineTooLong(length: tooLong.utf8.count, limit: Int(Layout.cmdlineMaxSize) - 1)) {
            try BootLoader.prepare(memory: memory, kernelPath: pvh, initrdPath: nil, cmdline: tooLong)
        }
    }

    @Test func missingAndUnreadableFilesNameThePath() throws {
        let memory = try GuestMemory(size: 16 << 20)
        let error = #expect(throws: BootLoaderError.self) {
            try BootLoader.prepare(memory: memory, kernelPath: "/nonexistent/vmlinux", initrdPath: nil, cmdline: "")
        }
        #expect(error == .cannotOpen(role: "kernel", path: "/nonexistent/vmlinux", errno: "No such file or directory"))
        #expect(error?.description == "cannot open kernel /nonexistent/vmlinux: No such file or directory; check that the path exists and is readable")

        let dir = try TemporaryDirectory()
        #expect(throws: BootLoaderError.notARegularFile(role: "kernel", path: dir.url.path)) {
            try BootLoader.prepare(memory: memory, kernelPath: dir.url.path, initrdPath: nil, cmdline: "")
        }
        let kernel = try dir.file("vmlinux", TestELF.vmlinux().bytes())
        #expect(throws: BootLoaderError.cannotOpen(role: "initrd", path: "/nonexistent/initrd", errno: "No such file or directory")) {
            try BootLoader.prepare(memory: memory, kernelPath: kernel, initrdPath: "/nonexistent/initrd", cmdline: "")
        }
        if getuid() != 0 {
            let locked = try dir.file("locked", [0])
            chmod(locked, 0)
            #expect(throws: BootLoaderError.cannotOpen(role: "kernel", path: locked, errno: "Permission denied")) {
                try BootLoader.prepare(memory: memory, kernelPath: locked, initrdPath: nil, cmdline: "")
            }
        }
    }

    @Test func kernelErrorsPassThrough() throws {
        let dir = try TemporaryDirectory()
        let notKernel = try dir.file("initrd.cpio", cpioNewc)
        let memory = try GuestMemory(size: 16 << 20)
        #expect(throws: KernelImageError.notAKernel(path: notKernel)) {
            try BootLoader.prepare(memory: memory, kernelPath: notKernel, initrdPath: nil, cmdline: "")
        }
        let kernel = try dir.file("bzImage", TestBzImage().bytes())
        #expect(throws: BootLoaderError.initrdNotRecognized(path: kernel)) {
            try BootLoader.prepare(memory: try GuestMemory(size: 64 << 20), kernelPath: kernel, initrdPath: kernel, cmdline: "")
        }
    }

    /// A kernel built by `volt-vmm kernel build` (another branch) lands here; check it if present.
    static let builtKernel: String? = {
        let root = FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache/volt-vmm/kernels").path
        let dirs = (try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []
        return dirs.sorted().map { "\(root)/\($0)/vmlinux" }.first { FileManager.default.fileExists(atPath: $0) }
    }()

    @Test(.enabled(if: builtKernel != nil, "SKIPPED: no built kernel under ~/.cache/volt-vmm/kernels/*/vmlinux"))
    func realBuiltKernel() throws {
        guard let path = Self.builtKernel else { return }
        let image = try KernelImage(bytes: try HostFile.contents(of: path, role: "kernel"), path: path)
        guard case let .elfPVH(elf) = image.format else { Issue.record("\(path) is not an ELF vmlinux"); return }
        #expect(elf.is64Bit)
        #expect(elf.pvhEntry >= Layout.highMemoryStart)
        let memory = try GuestMemory(size: 256 << 20)
        let entry = try BootLoader.prepare(memory: memory, kernelPath: path, initrdPath: nil, cmdline: "console=ttyS0")
        #expect(entry == .pvh(entry: elf.pvhEntry, startInfo: Layout.pvhStartInfoAddress))
    }
}
