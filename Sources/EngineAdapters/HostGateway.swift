#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The address containers on the default bridge reach the host by. A dockerd that has never run
/// before reports its bridge's IPAM config with a subnet but no gateway (the gateway appears only
/// after a restart with state, SPEC §11); the engines then give the bridge the subnet's first
/// host address, so that is the answer.
enum HostGateway {
    static func address(gateways: [String], subnets: [String]) -> String? {
        if let gateway = gateways.first(where: { !$0.isEmpty }) { return gateway }
        // IPv4 first: that is what `host_gateway` has always carried.
        let ordered = subnets.filter { !$0.contains(":") } + subnets.filter { $0.contains(":") }
        return ordered.lazy.compactMap(firstHost(ofSubnet:)).first
    }

    /// `172.17.0.0/16` → `172.17.0.1`; nil for anything that is not a CIDR with room for a host.
    static func firstHost(ofSubnet cidr: String) -> String? {
        let parts = cidr.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let prefix = Int(parts[1]) else { return nil }
        let family = parts[0].contains(":") ? AF_INET6 : AF_INET
        let width = family == AF_INET ? 4 : 16
        // Leaves room for a network address and at least one host.
        guard (0...(width * 8 - 2)).contains(prefix) else { return nil }
        var bytes = [UInt8](repeating: 0, count: 16)
        guard inet_pton(family, String(parts[0]), &bytes) == 1 else { return nil }
        for index in 0..<width {
            let kept = max(0, min(8, prefix - index * 8))
            bytes[index] &= kept == 0 ? 0 : ~UInt8(0) << (8 - kept)
        }
        bytes[width - 1] |= 1
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        guard inet_ntop(family, bytes, &text, socklen_t(text.count)) != nil else { return nil }
        return String(cString: text)
    }
}
