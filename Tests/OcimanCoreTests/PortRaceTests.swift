import Testing

@testable import OcimanCore

@Suite("Engine-picked host-port race")
struct PortRaceTests {
    @Test("only an address-in-use start with an engine-picked port, not naming a fixed one, is retried")
    func portRace() {
        let inUse = OcimanError.invalid(
            field: nil, message: "the container could not start: listen tcp4 127.0.0.1:41234: bind: address already in use")
        let picked = RunSpec(image: "busybox", publish: [PublishSpec(containerPort: 80, protocol: .tcp, hostIP: nil, hostPort: nil)])
        let zero = RunSpec(image: "busybox", publish: [PublishSpec(containerPort: 80, protocol: .tcp, hostIP: nil, hostPort: 0)])
        let fixed = RunSpec(image: "busybox", publish: [PublishSpec(containerPort: 80, protocol: .tcp, hostIP: nil, hostPort: 41234)])
        let mixed = RunSpec(image: "busybox", publish: picked.publish + [PublishSpec(containerPort: 81, protocol: .tcp, hostIP: nil, hostPort: 4123)])
        #expect(Runtime.isEnginePickedPortRace(inUse, picked))
        #expect(Runtime.isEnginePickedPortRace(inUse, zero))
        #expect(!Runtime.isEnginePickedPortRace(inUse, fixed))
        #expect(Runtime.isEnginePickedPortRace(inUse, mixed), "4123 is not 41234")
        let fixedNamed = RunSpec(image: "busybox", publish: picked.publish + fixed.publish)
        #expect(!Runtime.isEnginePickedPortRace(inUse, fixedNamed))
        #expect(!Runtime.isEnginePickedPortRace(.invalid(field: nil, message: "no such file"), picked))
        #expect(!Runtime.isEnginePickedPortRace(.unavailable("address already in use"), picked))
    }
}
