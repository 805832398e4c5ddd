import Foundation
import Testing

@testable import OcimanCore

@Suite("Container request validation and mapping")
struct ContainerValidationTests {
    static let image = "localhost/busybox:test"

    // MARK: Whole run requests: each rule names its field

    static let invalidRuns: [(String, RunSpec)] = [
        ("image", RunSpec(image: "Upper/Case")),
        ("name", RunSpec(image: image, name: "-web")),
        ("command[1]", RunSpec(image: image, command: ["echo", "a\0b"])),
        ("entrypoint", RunSpec(image: image, entrypoint: [])),
        ("env.A=B", RunSpec(image: image, env: ["A=B": "x"])),
        ("env.X", RunSpec(image: image, env: ["X": "nul\0"])),
        ("labels.a,b", RunSpec(image: image, labels: ["a,b": "x"])),
        ("labels.ociman.managed", RunSpec(image: image, labels: ["ociman.managed": "false"])),
        ("labels.ociman.expires-at", RunSpec(image: image, labels: ["ociman.expires-at": "1"])),
        ("publish[0].container_port", RunSpec(image: image, publish: [PublishSpec(containerPort: 0)])),
        ("publish[1].container_port", RunSpec(image: image, publish: [PublishSpec(containerPort: 80), PublishSpec(containerPort: 65_536)])),
        ("publish[0].host_port", RunSpec(image: image, publish: [PublishSpec(containerPort: 80, hostPort: 65_536)])),
        ("publish[0].host_port", RunSpec(image: image, publish: [PublishSpec(containerPort: 80, hostPort: -1)])),
        ("publish[0].host_ip", RunSpec(image: image, publish: [PublishSpec(containerPort: 80, hostIP: "localhost")])),
        ("publish[0].host_ip", RunSpec(image: image, publish: [PublishSpec(containerPort: 80, hostIP: "[::1]")])),
        ("publish[0].host_ip", RunSpec(image: image, publish: [PublishSpec(containerPort: 80, hostIP: "127.0.0.256")])),
        ("publish[0].host_ip", RunSpec(image: image, publish: [PublishSpec(containerPort: 80, hostIP: "fe80::1%eth0")])),
        ("mounts[0].target", RunSpec(image: image, mounts: [MountSpec(kind: .tmpfs, target: "relative")])),
        ("mounts[0].source", RunSpec(image: image, mounts: [MountSpec(kind: .bind, target: "/in")])),
        ("mounts[0].source", RunSpec(image: image, mounts: [MountSpec(kind: .bind, source: "rel/path", target: "/in")])),
        ("mounts[0].source", RunSpec(image: image, mounts: [MountSpec(kind: .volume, source: "/abs", target: "/v")])),
        ("mounts[0].source", RunSpec(image: image, mounts: [MountSpec(kind: .volume, source: "-x", target: "/v")])),
        ("mounts[0].source", RunSpec(image: image, mounts: [MountSpec(kind: .tmpfs, source: "x", target: "/t")])),
        ("workdir", RunSpec(image: image, workdir: "work")),
        ("user", RunSpec(image: image, user: "a:b:c")),
        ("user", RunSpec(image: image, user: "")),
        ("wait.timeout_seconds", RunSpec(image: image, wait: ReadinessWait(timeoutSeconds: 0))),
        ("wait.tcp_port", RunSpec(image: image, wait: ReadinessWait(timeoutSeconds: 5, tcpPort: 8080))),
        (
            "wait.tcp_port",
            RunSpec(
                image: image, publish: [PublishSpec(containerPort: 8080, protocol: .udp)],
                wait: ReadinessWait(timeoutSeconds: 5, tcpPort: 8080))
        ),
        ("wait.log.pattern", RunSpec(image: image, wait: ReadinessWait(timeoutSeconds: 5, log: .init(pattern: "")))),
        ("wait.log.pattern", RunSpec(image: image, wait: ReadinessWait(timeoutSeconds: 5, log: .init(pattern: "(unclosed")))),
        ("wait.log.occurrences", RunSpec(image: image, wait: ReadinessWait(timeoutSeconds: 5, log: .init(pattern: "x", occurrences: 0)))),
        ("wait.exec.command", RunSpec(image: image, wait: ReadinessWait(timeoutSeconds: 5, exec: []))),
        ("ttl_seconds", RunSpec(image: image, ttlSeconds: 0)),
        ("session", RunSpec(image: image, session: "has space")),
        ("session", RunSpec(image: image, session: String(repeating: "a", count: 65))),
    ]

    @Test(arguments: invalidRuns)
    func rejectsRun(field: String, spec: RunSpec) {
        let error = #expect(throws: ValidationError.self) { try Validation.runSpec(spec) }
        #expect(error?.field == field, "\(error?.description ?? "no error")")
    }

    @Test func acceptsEveryOption() throws {
        let spec = RunSpec(
            image: Self.image, name: "pg.test-1", command: ["-c", "echo"], entrypoint: ["sh"],
            env: ["MULTI": "a\nb"], labels: ["org.example.role": String(repeating: "v", count: 65_536)],
            publish: [
                PublishSpec(containerPort: 8080, hostIP: "127.0.0.1"), PublishSpec(containerPort: 8080, hostIP: "::1"),
                PublishSpec(containerPort: 53, protocol: .udp, hostPort: 0), PublishSpec(containerPort: 1, hostPort: 65_535),
            ],
            mounts: [
                MountSpec(kind: .bind, source: "/srv", target: "/in", readOnly: true),
                MountSpec(kind: .volume, source: "data_1.x", target: "/data"), MountSpec(kind: .volume, target: "/anon"),
                MountSpec(kind: .tmpfs, target: "/scratch"),
            ],
            workdir: "/work", user: "65534:65534", autoRemove: true, pullPolicy: .never,
            wait: ReadinessWait(timeoutSeconds: 1, tcpPort: 8080, log: .init(pattern: #"ready\.$"#, occurrences: 2), exec: ["true"]),
            ttlSeconds: 1, session: "Ab_9-z")
        try Validation.runSpec(spec)
    }

    // MARK: Pieces

    @Test(arguments: [
        ("127.0.0.1", IPAddressKind.v4), ("0.0.0.0", .v4), ("::1", .v6), ("::", .v6), ("2001:db8::8a2e:370:7334", .v6),
        ("::ffff:192.0.2.1", .v6),
    ])
    func parsesIPLiterals(_ text: String, _ kind: IPAddressKind) {
        #expect(IPAddressKind(literal: text) == kind)
    }

    @Test(arguments: ["", "localhost", "1.2.3", "[::1]", "::1/128", " 127.0.0.1", "1.2.3.4:80"])
    func rejectsIPLiterals(_ text: String) {
        #expect(IPAddressKind(literal: text) == nil)
    }

    @Test func labelFilters() throws {
        #expect(try Validation.labelFilter("org.example.role") == "org.example.role")
        #expect(try Validation.labelFilter("k=v=w") == "k=v=w")
        #expect(try Validation.labelFilter("k=") == "k=")
        for bad in ["", "=v", "a b=c", "a,b"] {
            let error = #expect(throws: ValidationError.self) { try Validation.labelFilter(bad) }
            #expect(error?.field == "label")
        }
        #expect(throws: ValidationError.self) { try Validation.labelFilter("k=" + String(repeating: "x", count: 65_537)) }
    }

    @Test func signals() throws {
        for good in ["SIGKILL", "KILL", "sigterm", "Term", "9", "64", "SIGRTMIN+3", "RTMAX-1", "SIGUSR1", "SIGWINCH"] {
            try Validation.signal(good)
        }
        for bad in ["", "0", "65", "-9", "BOGUS", "SIGBOGUS", "SIG", "SIGRTMIN+16", "RTMIN+", "KILL "] {
            #expect(throws: ValidationError(field: "signal", message: "unknown signal \"\(bad)\"; use a name such as SIGTERM or a number 1–64")) {
                try Validation.signal(bad)
            }
        }
    }

    // MARK: What reaches the engine

    @Test func createConfigAddsManagedLabels() throws {
        let now = Date(timeIntervalSince1970: 1_700_000_000)
        let spec = RunSpec(image: Self.image, command: [], labels: ["k": "v"], ttlSeconds: 60, session: "s1")
        let config = Runtime.createConfig(for: spec, now: now)
        #expect(config.labels == [
            "k": "v", "ociman.managed": "true", "ociman.created": "2023-11-14T22:13:20Z",
            "ociman.expires-at": "1700000060", "ociman.session": "s1",
        ])
        #expect(config.command == nil, "an empty command keeps the image's")
    }

    @Test func probeTargetUsesLoopbackForWildcards() {
        let v6Only = [PublishedPort(containerPort: 80, protocol: .tcp, hostIP: "::", hostPort: 1234)]
        #expect(Runtime.probeTarget(for: 80, in: v6Only)! == ("::1", 1234))
        let both = [
            PublishedPort(containerPort: 80, protocol: .tcp, hostIP: "::", hostPort: 1),
            PublishedPort(containerPort: 80, protocol: .tcp, hostIP: "0.0.0.0", hostPort: 2),
        ]
        #expect(Runtime.probeTarget(for: 80, in: both)! == ("127.0.0.1", 2))
    }
}

@Suite("Listening sockets: socket diagnostics in the process's namespace, /proc/<pid>/net")
struct ListeningSocketsTests {
    static let table = """
          sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
           0: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 552 1 0 100 0 0 10 0
           1: 0100007F:47F7 0100007F:1538 01 00000000:00000000 00:00000000 00000000     0        0 652 1 0 100 0 0 10 0
        """
    static let table6 = """
          sl  local_address                         remote_address                        st tx_queue rx_queue
           0: 00000000000000000000000000000000:1538 00000000000000000000000000000000:0000 0A 00000000:00000000
        """

    @Test func findsListeningPortsOnly() {
        #expect(ListeningSockets.isListening(port: 8080, table: Self.table))
        #expect(!ListeningSockets.isListening(port: 18423, table: Self.table), "an established socket is not listening")
        #expect(!ListeningSockets.isListening(port: 5432, table: Self.table))
        #expect(ListeningSockets.isListening(port: 5432, table: Self.table6))
    }

    @Test func readsTheProcessTables() throws {
        #expect(ListeningSockets.isListening(port: 1, pid: Int(Int32.max)) == nil, "no such process")
        #expect(ListeningSockets.isListening(port: 1, pid: Int(getpid())) != nil)
    }

    @Test("a listener of this process is seen while it listens, on IPv4 and IPv6", arguments: [AF_INET, AF_INET6])
    func asksTheKernel(family: Int32) throws {
        let sockets = ListeningSockets(pid: Int(getpid()))
        // Only root may join a network namespace; anyone else reads the /proc tables.
        #expect(sockets.asksTheKernel == (getuid() == 0))
        let (listener, port) = try Self.listen(family: family)
        #expect(sockets.isListening(port: port) == true)
        close(listener)
        #expect(sockets.isListening(port: port) == false)
        #expect(ListeningSockets(pid: Int(Int32.max)).isListening(port: port) == nil, "no such process")
    }

    /// A loopback listener on a port the kernel picks.
    static func listen(family: Int32) throws -> (socket: Int32, port: Int) {
        let fd = socket(family, Int32(SOCK_STREAM.rawValue), 0)
        try #require(fd >= 0)
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        var storage = sockaddr_storage()
        if family == AF_INET6 {
            var address = sockaddr_in6()
            address.sin6_family = sa_family_t(AF_INET6)
            address.sin6_addr = in6addr_loopback
            let bound = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) }
            }
            try #require(bound == 0)
        } else {
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
            let bound = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            try #require(bound == 0)
        }
        try #require(Glibc.listen(fd, 1) == 0)
        _ = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        let port = withUnsafeBytes(of: &storage) { bytes in
            // sin_port and sin6_port sit at the same offset, in network order.
            Int(UInt16(bigEndian: bytes.loadUnaligned(fromByteOffset: 2, as: UInt16.self)))
        }
        return (fd, port)
    }
}
