import Glibc

/// volt-vmm's working directory, which relative paths are taken against ("/" if it
/// cannot be read).
public enum WorkingDirectory {
    public static var current: String {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        return getcwd(&buffer, buffer.count) != nil ? String(cString: buffer) : "/"
    }
}
