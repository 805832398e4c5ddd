import Testing

@testable import EngineAdapters

@Suite("host_gateway of a bridge")
struct HostGatewayTests {
    @Test("host_gateway: the bridge's gateway, else the first host of its subnet")
    func hostGateway() {
        #expect(HostGateway.address(gateways: ["172.17.0.1"], subnets: ["172.17.0.0/16"]) == "172.17.0.1")
        // A dockerd that never ran before: a subnet and no gateway (SPEC §11).
        #expect(HostGateway.address(gateways: [], subnets: ["172.17.0.0/16"]) == "172.17.0.1")
        #expect(HostGateway.address(gateways: [], subnets: ["fd00:1::/64", "10.88.0.0/16"]) == "10.88.0.1")
        #expect(HostGateway.address(gateways: [], subnets: ["fd00:1::/64"]) == "fd00:1::1")
        #expect(HostGateway.firstHost(ofSubnet: "192.168.5.77/24") == "192.168.5.1")
        #expect(HostGateway.firstHost(ofSubnet: "10.1.2.3/9") == "10.0.0.1")
        #expect(HostGateway.firstHost(ofSubnet: "10.0.0.0/31") == nil)
        #expect(HostGateway.firstHost(ofSubnet: "not-a-subnet") == nil)
        #expect(HostGateway.address(gateways: [], subnets: []) == nil)
    }
}
