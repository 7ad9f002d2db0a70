import Testing
@testable import Sandbox

struct SeccompRuleTests {
    @Test func conditionsReadAsFilters() {
        #expect((Arg(1) == UInt64(3)).description == "arg1 == 0x3")
        #expect(Arg(2).hasNone(4).description == "arg2 & 0x4 == 0")
        #expect(Arg(0).hasAll(0x10100).description == "arg0 & 0x10100 == 0x10100")
        #expect((Arg(1) == Int32(-1)).value == 0xFFFF_FFFF)
        #expect(SeccompRule("clone3", failing: 38, why: "x").description == "clone3 -> errno 38")
    }

    @Test func countsDistinctAllowedCalls() {
        let rules = [SeccompRule("fcntl", Arg(1) == UInt64(1), why: "a"), SeccompRule("fcntl", Arg(1) == UInt64(2), why: "b"),
                     SeccompRule("read", why: "c"), SeccompRule("clone3", failing: 38, why: "d")]
        #expect(Sandbox.allowedSyscallCount(rules) == 2)
        #expect(Sandbox.unknownSyscalls(rules + [SeccompRule("no_such_call", why: "e")]) == ["no_such_call"])
    }
}
