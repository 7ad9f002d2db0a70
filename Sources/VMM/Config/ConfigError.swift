import IPC
import SystemPackage

/// A device option, `--id`, `--fault` or `--config` file the operator gave that cannot
/// be used: one line naming the option and the fix. (A config file's field-level
/// problems are collected in `ConfigProblems`.)
public enum ConfigError: Error, Equatable, CustomStringConvertible {
    // key=value options (`--disk`, `--net`)
    case emptyOption(flag: String)
    case notKeyValue(flag: String, text: String, part: String)
    case unknownKey(flag: String, text: String, key: String, allowed: [String])
    case repeatedKey(flag: String, text: String, key: String)
    case missingValue(flag: String, key: String)
    case notOnOff(flag: String, key: String, value: String)
    case numberOutOfRange(flag: String, key: String, value: String, range: ClosedRange<Int>)
    // --disk
    case serialTooLong(String)
    // --net
    case tapAndBridge(String)
    case noTapOrBridge(String)
    case interfaceNameTooLong(key: String, name: String)
    case modeWithoutBridge(String)
    case idWithoutBridge(String)
    case unknownBridgeMode(String)
    case invalidNICID(String)
    case invalidMAC(String)
    case multicastMAC(String)
    // --fault
    case burstWithoutRate(String)
    case faultWithoutDevice(String)
    case faultDeviceNotAName(text: String, device: String)
    case faultNoSuchDevice(text: String, device: String, devices: [String])
    case badFault(device: String, FaultSpec.ParseError)
    // --id
    case invalidVMID(String)
    // --config
    case configUnopenable(path: String, Errno)
    case configTooLarge(path: String)
    case configNotJSON(file: String, reason: String)

    public var description: String {
        switch self {
        case let .emptyOption(flag):
            return "\(flag): empty value; expected key=value[,key=value...]"
        case let .notKeyValue(flag, text, part):
            return "\(flag) \(text): '\(part)' is not key=value"
        case let .unknownKey(flag, text, key, allowed):
            return "\(flag) \(text): unknown key '\(key)'; expected one of \(allowed.joined(separator: ", "))"
        case let .repeatedKey(flag, text, key):
            return "\(flag) \(text): '\(key)' given twice"
        case let .missingValue(flag, key):
            return "\(flag): '\(key)=' is required"
        case let .notOnOff(flag, key, value):
            return "\(flag): \(key)=\(value) must be on or off"
        case let .numberOutOfRange(flag, key, value, range):
            return "\(flag): \(key)=\(value) must be a number from \(range.lowerBound) to \(range.upperBound)"
        case let .serialTooLong(serial):
            return "--disk serial=\(serial): at most 20 bytes (virtio-blk GET_ID)"
        case let .tapAndBridge(text):
            return "--net \(text): tap= and bridge= exclude each other — give one"
        case let .noTapOrBridge(text):
            return "--net \(text): give tap=NAME (an existing TAP) or bridge=BR (volt-vmm creates the TAP)"
        case let .interfaceNameTooLong(key, name):
            return "--net \(key)=\(name): interface names are at most 15 bytes"
        case let .modeWithoutBridge(text):
            return "--net \(text): mode= applies to bridge=BR only (tap= names an existing TAP)"
        case let .idWithoutBridge(text):
            return "--net \(text): id= names the TAP volt-vmm creates, so it applies to bridge=BR only"
        case let .unknownBridgeMode(mode):
            return "--net mode=\(mode): expected direct or networkd"
        case let .invalidNICID(id):
            return "--net id=\(id): use 1 to \(NetSpec.maxNICIDLength) characters from a-z A-Z 0-9 _ - (the TAP is named tap-<id>)"
        case let .invalidMAC(text):
            return "--net mac=\(text): not a MAC address (like 52:54:00:12:34:56)"
        case let .multicastMAC(text):
            return "--net mac=\(text): a NIC needs a unicast address (first byte even)"
        case let .burstWithoutRate(text):
            return "--entropy \(text): burst= needs rate= (bytes per second), e.g. --entropy rate=65536,burst=1048576"
        case let .faultWithoutDevice(text):
            return "--fault \(text): no device; usage: \(FaultOption.usage)"
        case let .faultDeviceNotAName(text, device):
            return "--fault \(text): '\(device)' is not a device name (disk0, net1, ...); usage: \(FaultOption.usage)"
        case let .faultNoSuchDevice(text, device, devices):
            return "--fault \(text): no spawned device '\(device)'; devices: "
                + (devices.isEmpty ? "none (give --disk or --net)" : devices.joined(separator: ", "))
        case let .badFault(device, error):
            return "--fault \(device): \(error.description)"
        case let .invalidVMID(text):
            return "--id \(text): use 1 to \(VMID.maxLength) characters from a-z A-Z 0-9 _ -"
        case let .configUnopenable(path, errno):
            return "--config \(path): \(errno) — check the path"
        case let .configTooLarge(path):
            return "--config \(path): larger than 1 MiB; is it a VM config?"
        case let .configNotJSON(file, reason):
            return "\(file): not valid JSON (\(reason))"
        }
    }
}
