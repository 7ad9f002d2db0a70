/// vhost-user protocol (frontend and backend). Filled in by the device-plumbing issue.
public enum VhostUser {
    /// Protocol version carried in every message header's flags.
    public static let version: UInt32 = 1
}
