import Foundation
import MHDTransport
import Testing

@Suite struct SocketActivationTests {
    struct Case: Sendable, CustomStringConvertible {
        var name: String
        var environment: [String: String]
        var expected: Int32?
        var fails = false
        var description: String { name }
    }

    static let ownID: pid_t = 4242

    static let cases: [Case] = [
        Case(name: "not activated", environment: [:], expected: nil),
        Case(name: "one socket for us", environment: ["LISTEN_FDS": "1", "LISTEN_PID": "4242"], expected: 3),
        Case(name: "meant for another process", environment: ["LISTEN_FDS": "1", "LISTEN_PID": "77"], expected: nil),
        Case(name: "LISTEN_PID missing", environment: ["LISTEN_FDS": "1"], expected: nil),
        Case(name: "LISTEN_FDS missing", environment: ["LISTEN_PID": "4242"], expected: nil),
        Case(name: "zero sockets", environment: ["LISTEN_FDS": "0", "LISTEN_PID": "4242"], expected: nil),
        Case(name: "two sockets", environment: ["LISTEN_FDS": "2", "LISTEN_PID": "4242"], fails: true),
        Case(name: "LISTEN_FDS not a number", environment: ["LISTEN_FDS": "one", "LISTEN_PID": "4242"], fails: true),
        Case(name: "negative LISTEN_FDS", environment: ["LISTEN_FDS": "-1", "LISTEN_PID": "4242"], fails: true),
        Case(name: "LISTEN_PID not a number", environment: ["LISTEN_FDS": "1", "LISTEN_PID": "self"], fails: true),
    ]

    @Test(arguments: cases)
    func passedDescriptor(_ testCase: Case) {
        do {
            let descriptor = try SocketActivation.passedDescriptor(environment: testCase.environment, processID: Self.ownID)
            #expect(!testCase.fails, "expected an error")
            #expect(descriptor == testCase.expected)
        } catch {
            #expect(testCase.fails, "unexpected error \(error)")
        }
    }

    @Test func clearEnvironmentUnsetsTheVariables() {
        setenv("LISTEN_FDS", "1", 1)
        setenv("LISTEN_PID", "1", 1)
        setenv("LISTEN_FDNAMES", "ocimand", 1)
        SocketActivation.clearEnvironment()
        #expect(getenv("LISTEN_FDS") == nil)
        #expect(getenv("LISTEN_PID") == nil)
        #expect(getenv("LISTEN_FDNAMES") == nil)
    }

    // MARK: - What an inherited descriptor is bound to

    @Test func inheritedTCPSocketResolvesToItsAddress() throws {
        let descriptor = try Self.listeningTCP(host: "127.0.0.1")
        defer { close(descriptor) }
        let resolved = try ListenAddress.inherited(descriptor: descriptor).resolved()
        guard case .tcp(let host, let port) = resolved else {
            Issue.record("expected tcp, got \(resolved)")
            return
        }
        #expect(host == "127.0.0.1")
        #expect(port > 0)
        #expect(resolved.isLocalOnly)
    }

    @Test func inheritedWildcardSocketIsNotLocal() throws {
        let descriptor = try Self.listeningTCP(host: "0.0.0.0")
        defer { close(descriptor) }
        let resolved = try ListenAddress.inherited(descriptor: descriptor).resolved()
        #expect(!resolved.isLocalOnly, "\(resolved)")
    }

    @Test func inheritedUnixSocketResolvesToItsPath() throws {
        let path = NSTemporaryDirectory() + "activation-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).sock"
        let descriptor = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        defer {
            close(descriptor)
            unlink(path)
        }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: Array(path.utf8)) }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        #expect(bound == 0)
        #expect(listen(descriptor, 8) == 0)
        let resolved = try ListenAddress.inherited(descriptor: descriptor).resolved()
        #expect(resolved == .unix(path: path))
        #expect(resolved.isLocalOnly)
    }

    @Test func descriptorThatIsNotAListeningSocketIsRefused() throws {
        // Bound but not listening.
        let notListening = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(notListening) }
        #expect(throws: ListenAddressError.self) { try ListenAddress.inherited(descriptor: notListening).resolved() }
        // Not a socket at all.
        var pipeEnds: [Int32] = [0, 0]
        #expect(pipe(&pipeEnds) == 0)
        defer { pipeEnds.forEach { close($0) } }
        #expect(throws: ListenAddressError.self) { try ListenAddress.inherited(descriptor: pipeEnds[0]).resolved() }
        // Closed.
        #expect(throws: ListenAddressError.self) { try ListenAddress.inherited(descriptor: 9999).resolved() }
    }

    static func listeningTCP(host: String) throws -> Int32 {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        inet_pton(AF_INET, host, &address.sin_addr)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(descriptor, 8) == 0 else {
            close(descriptor)
            throw ListenAddressError.system("bind", String(cString: strerror(errno)))
        }
        return descriptor
    }
}
