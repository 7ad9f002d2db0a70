import IPC

/// `--fault DEVICE:KIND[,key=value...]`: a fault injected by the worker of one spawned
/// device (`disk0`, `net1`, `rng2`: kind + index among all devices, as in the log;
/// disks first, then NICs, then the entropy device). The part after
/// the colon is parsed by IPC.FaultSpec, the same parser the worker uses on its
/// `--fault` argument, so volt-vmm rejects a bad one before anything is spawned.
public enum FaultOption {
    static let usage = "--fault DEVICE:KIND[,K=V...] with DEVICE a spawned device (disk0, net1, rng2, ...) and KIND "
        + FaultSpec.usage

    /// Adds each fault to its device's spec. A fault without `seed=` gets the device
    /// index as its seed (deterministic per device).
    public static func apply(_ faults: [String], disks: inout [DiskSpec], nets: inout [NetSpec],
                             entropy: inout [EntropySpec]) throws {
        for text in faults {
            guard let colon = text.firstIndex(of: ":") else {
                throw ConfigError.faultWithoutDevice(text)
            }
            let device = String(text[..<colon])
            let spec = String(text[text.index(after: colon)...])
            let digits = device.drop { !$0.isNumber }
            let kind = device.prefix(device.count - digits.count)
            guard let index = Int(digits), String(index) == digits else {
                throw ConfigError.faultDeviceNotAName(text: text, device: device)
            }
            let netIndex = index - disks.count, rngIndex = index - disks.count - nets.count
            let worker: FaultSpec.Device
            switch kind {
            case "disk" where disks.indices.contains(index): worker = .block
            case "net" where nets.indices.contains(netIndex): worker = .net
            case "rng" where entropy.indices.contains(rngIndex): worker = .entropy
            default:
                let names = disks.indices.map { "disk\($0)" } + nets.indices.map { "net\(disks.count + $0)" }
                    + entropy.indices.map { "rng\(disks.count + nets.count + $0)" }
                throw ConfigError.faultNoSuchDevice(text: text, device: device, devices: names)
            }
            var parsed: FaultSpec
            do { parsed = try FaultSpec.parse(spec, device: worker) } catch {
                throw ConfigError.badFault(device: device, error)
            }
            if !spec.contains("seed=") { parsed.seed = UInt64(index) }
            switch worker {
            case .block: disks[index].faults.append(parsed)
            case .net: nets[netIndex].faults.append(parsed)
            case .entropy: entropy[rngIndex].faults.append(parsed)
            }
        }
    }
}
