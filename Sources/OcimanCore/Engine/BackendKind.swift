/// The engines ociman has adapters for; the runtime only reports which one it drives.
public enum BackendKind: String, Sendable, CaseIterable {
    case docker
    case podman
}
