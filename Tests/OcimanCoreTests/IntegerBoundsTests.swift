import Testing

@testable import OcimanCore

@Suite("Integer bounds and time arithmetic")
struct IntegerBoundsCoreTests {
    @Test("every bounded integer of a run is refused past its bound, naming the field")
    func runSpecBounds() {
        func field(_ spec: RunSpec) -> String? {
            do {
                try Validation.runSpec(spec)
                return nil
            } catch {
                return error.field
            }
        }
        let publish = [PublishSpec(containerPort: 8080, protocol: .tcp, hostIP: nil, hostPort: nil)]
        #expect(field(RunSpec(image: "busybox", ttlSeconds: Int.max)) == "ttl_seconds")
        #expect(field(RunSpec(image: "busybox", ttlSeconds: IntegerBounds.ttlSeconds.upperBound)) == nil)
        #expect(field(RunSpec(image: "busybox", wait: ReadinessWait(timeoutSeconds: Int.max))) == "wait.timeout_seconds")
        #expect(field(RunSpec(image: "busybox", wait: ReadinessWait(timeoutSeconds: Int.min))) == "wait.timeout_seconds")
        #expect(
            field(RunSpec(image: "busybox", wait: ReadinessWait(timeoutSeconds: 5, log: .init(pattern: "x", occurrences: Int.max))))
                == "wait.log.occurrences")
        #expect(
            field(RunSpec(image: "busybox", publish: publish, wait: ReadinessWait(timeoutSeconds: 5, tcpPort: Int.max)))
                == "wait.tcp_port")
        #expect(
            field(RunSpec(image: "busybox", publish: [PublishSpec(containerPort: 8080, protocol: .tcp, hostIP: nil, hostPort: Int.min)]))
                == "publish[0].host_port")
    }

    @Test("the message names the field and the range")
    func message() {
        #expect(throws: ValidationError(field: "timeout", message: "timeout must be between 0 and 3600, not 9223372036854775807")) {
            try IntegerBounds.check(Int.max, IntegerBounds.stopTimeoutSeconds, field: "timeout")
        }
    }

    @Test("durations become nanoseconds without trapping")
    func saturatingNanoseconds() {
        #expect(Duration.seconds(2).saturatingNanoseconds == 2_000_000_000)
        #expect(Duration.milliseconds(1500).saturatingNanoseconds == 1_500_000_000)
        #expect(Duration.seconds(Int64.max).saturatingNanoseconds == Int64.max)
        #expect(Duration.seconds(Int64.min).saturatingNanoseconds == Int64.min)
        #expect((Duration.seconds(9_223_372_036) + .nanoseconds(999_999_999)).saturatingNanoseconds == Int64.max)
    }
}
