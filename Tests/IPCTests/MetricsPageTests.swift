import Glibc
import IPC
import SystemPackage
import Testing

@Suite struct MetricsPageTests {
    @Test func workerCountersAreVisibleThroughTheSharedFD() throws {
        let vmm = try MetricsPage.create()
        // The worker maps the same memfd through its own fd (as if inherited).
        let worker = try MetricsPage(adopting: try vmm.fd.duplicate())
        #expect(vmm.snapshot().isEmpty, "nothing registered yet")
        let counters = try worker.register(["requests_read", "bytes_read"])
        counters[0].add()
        counters[0].add(2)
        counters[1].add(4096)
        let snapshot = vmm.snapshot()
        #expect(snapshot.map(\.name) == ["requests_read", "bytes_read"])
        #expect(snapshot.map(\.value) == [3, 4096])
    }

    @Test func limitsAndWrongFDs() throws {
        let page = try MetricsPage.create()
        #expect(throws: MetricsPage.PageError.self) { try page.register((0...MetricsPage.maxCounters).map { "c\($0)" }) }
        let notAPage = FileDescriptor(rawValue: open("/dev/null", O_RDONLY))
        #expect(throws: MetricsPage.PageError.self) { try MetricsPage(adopting: notAPage) }
    }

    @Test func hostileContentIsBounded() throws {
        let page = try MetricsPage.create()
        let worker = try MetricsPage(adopting: try page.fd.duplicate())
        _ = try worker.register([String(repeating: "x", count: 100)])
        // Corrupt the count to something huge: the reader still stays inside the page.
        try page.fd.writeAll(toAbsoluteOffset: 8, [0xff, 0xff, 0xff, 0x7f])
        let snapshot = page.snapshot()
        #expect(snapshot.count == MetricsPage.maxCounters)
        #expect(snapshot[0].name.utf8.count == 39, "names are cut to their field")
    }
}

