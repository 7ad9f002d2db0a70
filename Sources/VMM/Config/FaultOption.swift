import IPC

/// `--fault DEVICE:KIND[,key=value...]`: a fault injected by the worker of one spawned
/// device (`disk0`, `net1`, `rng2`: kind + index among all devices, as in the log;
/// disks first, then NICs, then the entropy device). The part after
/// the colon is parsed by IPC.FaultSpec, the same parser the worker uses on its
/// `--fault` argument, so volt-vmm rejects a bad one before anything is spawned.
public enum FaultOption {
    static let usage = "--fault DEVICE:KIND[,K=V...] with DEVICE a spawned device (disk0, net1, rng2, ...) and KIND "
        + FaultSpec.usage

    /// Adds each fault to its device's spec; `devices` in the VM's order (a device's name
    /// is its kind and its index in it). A fault without `seed=` gets the device index as
    /// its seed (deterministic per device).
    public static func apply(_ faults: [String], to devices: inout [VirtioDeviceSpec]) throws {
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
            let worker: FaultSpec.Device
            switch devices.indices.contains(index) ? devices[index] : nil {
            case .disk? where kind == "disk": worker = .block
            case .net? where kind == "net": worker = .net
            case .entropy? where kind == "rng": worker = .entropy
            default:
                let names = devices.enumerated().compactMap { i, d -> String? in
                    switch d { case .disk, .net, .entropy: return "\(d.kind)\(i)"; default: return nil }
                }
                throw ConfigError.faultNoSuchDevice(text: text, device: device, devices: names)
            }
            var parsed: FaultSpec
            do { parsed = try FaultSpec.parse(spec, device: worker) } catch {
                throw ConfigError.badFault(device: device, error)
            }
            if !spec.contains("seed=") { parsed.seed = UInt64(index) }
            switch devices[index] {
            case var .disk(d): d.faults.append(parsed); devices[index] = .disk(d)
            case var .net(n): n.faults.append(parsed); devices[index] = .net(n)
            case var .entropy(e): e.faults.append(parsed); devices[index] = .entropy(e)
            default: break
            }
        }
    }
}
