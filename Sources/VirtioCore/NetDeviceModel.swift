import CShim

/// virtio-net feature bits (virtio 1.2, 5.1.3) and the transport bits we offer (6).
/// Shared by volt-net-worker and volt-vmm's in-kernel vhost-net path.
public enum NetFeature {
    public static let csum: UInt64 = 1 << 0
    public static let guestCsum: UInt64 = 1 << 1
    public static let mtu: UInt64 = 1 << 3
    public static let mac: UInt64 = 1 << 5
    public static let guestTSO4: UInt64 = 1 << 7
    public static let guestTSO6: UInt64 = 1 << 8
    public static let guestECN: UInt64 = 1 << 9
    public static let guestUFO: UInt64 = 1 << 10
    public static let hostTSO4: UInt64 = 1 << 11
    public static let hostTSO6: UInt64 = 1 << 12
    public static let hostECN: UInt64 = 1 << 13
    public static let hostUFO: UInt64 = 1 << 14
    public static let mrgRxbuf: UInt64 = 1 << 15
    public static let status: UInt64 = 1 << 16
    public static let ctrlVQ: UInt64 = 1 << 17
    public static let mq: UInt64 = 1 << 22
    public static let indirectDesc = VirtioFeature.indirectDescriptors
    public static let eventIdx = VirtioFeature.eventIdx
    public static let version1 = VirtioFeature.version1
}

/// The parts of a virtio-net device that do not depend on who moves the packets.
public enum NetDeviceModel {
    /// struct virtio_net_config (5.1.4): mac, status (LINK_UP), max_virtqueue_pairs, mtu,
    /// speed and duplex unknown; 24 bytes.
    public static func configBytes(mac: [UInt8]?, queuePairs: Int, mtu: UInt16?) -> [UInt8] {
        var c = [UInt8](repeating: 0, count: 24)
        if let mac { c.replaceSubrange(0..<6, with: mac.prefix(6)) }
        c[6] = 1   // VIRTIO_NET_S_LINK_UP
        let pairs = UInt16(clamping: queuePairs)
        c[8] = UInt8(pairs & 0xff); c[9] = UInt8(pairs >> 8)
        let mtu = mtu ?? 1500
        c[10] = UInt8(mtu & 0xff); c[11] = UInt8(mtu >> 8)
        c[12] = 0xff; c[13] = 0xff; c[14] = 0xff; c[15] = 0xff; c[16] = 0xff
        return c
    }

    /// The TUN_F_* offloads the TAP behind `fd` accepts, probed one by one (CSUM first: the
    /// TSO bits are only valid with it). Leaves the offloads at 0.
    public static func probeTapOffloads(fd: Int32) -> UInt32 {
        var supported: UInt32 = 0
        guard volt_tap_set_offload(fd, UInt32(VOLT_TUN_F_CSUM)) >= 0 else { return 0 }
        supported |= UInt32(VOLT_TUN_F_CSUM)
        for bit in [VOLT_TUN_F_TSO4, VOLT_TUN_F_TSO6, VOLT_TUN_F_TSO_ECN, VOLT_TUN_F_UFO] {
            let flags = UInt32(VOLT_TUN_F_CSUM) | UInt32(bit) | (bit == VOLT_TUN_F_TSO_ECN ? UInt32(VOLT_TUN_F_TSO4) : 0)
            if volt_tap_set_offload(fd, flags) >= 0 { supported |= UInt32(bit) }
        }
        _ = volt_tap_set_offload(fd, 0)
        return supported
    }

    /// The offload features a TAP with TUN_F_* `tapOffloads` lets us offer: the host side
    /// (the TAP takes partial checksums and GSO frames from the guest) and the guest side
    /// (the TAP may hand such frames to the guest).
    public static func offloadFeatures(tapOffloads: UInt32) -> UInt64 {
        var f = NetFeature.csum | NetFeature.hostTSO4 | NetFeature.hostTSO6 | NetFeature.hostECN
        if tapOffloads & UInt32(VOLT_TUN_F_UFO) != 0 { f |= NetFeature.hostUFO }
        if tapOffloads & UInt32(VOLT_TUN_F_CSUM) != 0 {
            f |= NetFeature.guestCsum
            if tapOffloads & UInt32(VOLT_TUN_F_TSO4) != 0 { f |= NetFeature.guestTSO4 }
            if tapOffloads & UInt32(VOLT_TUN_F_TSO6) != 0 { f |= NetFeature.guestTSO6 }
            if tapOffloads & UInt32(VOLT_TUN_F_TSO_ECN) != 0 { f |= NetFeature.guestECN }
            if tapOffloads & UInt32(VOLT_TUN_F_UFO) != 0 { f |= NetFeature.guestUFO }
        }
        return f
    }

    /// TUNSETOFFLOAD for the features the driver acked: exactly the GUEST_* offloads. The
    /// TSO bits need CSUM (5.1.3.1), so without GUEST_CSUM nothing else is set.
    public static func tapOffload(acked: UInt64) -> UInt32 {
        var offload: UInt32 = 0
        guard acked & NetFeature.guestCsum != 0 else { return 0 }
        offload |= UInt32(VOLT_TUN_F_CSUM)
        if acked & NetFeature.guestTSO4 != 0 { offload |= UInt32(VOLT_TUN_F_TSO4) }
        if acked & NetFeature.guestTSO6 != 0 { offload |= UInt32(VOLT_TUN_F_TSO6) }
        if acked & NetFeature.guestECN != 0 && offload & UInt32(VOLT_TUN_F_TSO4 | VOLT_TUN_F_TSO6) != 0 {
            offload |= UInt32(VOLT_TUN_F_TSO_ECN)
        }
        if acked & NetFeature.guestUFO != 0 { offload |= UInt32(VOLT_TUN_F_UFO) }
        return offload
    }
}
