import OcimanClient
import OcimanTestSupport

extension OcimandProcess {
    /// The generated Swift client (OcimanClient) for this ocimand, on its TCP or unix socket.
    var swiftClient: Client {
        Client(host: unixSocket.map(OcimanHost.unix) ?? .tcp(host: host, port: port))
    }
}
