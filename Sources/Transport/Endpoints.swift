/// The three TCP addresses of a learner, on consecutive ports from `basePort`.
public struct Endpoints: Sendable, Equatable {
    /// The learner's host name or IP address.
    public var host: String
    /// The trajectory port; weights and control use the next two ports.
    public var basePort: Int

    /// Creates endpoints for a learner at `host` listening from `basePort` on.
    public init(host: String = "127.0.0.1", basePort: Int = 5555) {
        self.host = host
        self.basePort = basePort
    }

    /// The address for trajectory traffic: `tcp://host:basePort`.
    public var trajectories: String { url(port: basePort) }
    /// The address for weight traffic: `tcp://host:basePort+1`.
    public var weights: String { url(port: basePort + 1) }
    /// The address for control traffic: `tcp://host:basePort+2`.
    public var control: String { url(port: basePort + 2) }

    private func url(port: Int) -> String {
        "tcp://\(host):\(port)"
    }
}
