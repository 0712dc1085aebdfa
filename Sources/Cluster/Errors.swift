/// The errors of the Cluster layer, one type per layer, each modelled on `WireError`: a case per kind of failure,
/// a stable snake_case `reason`, and a one-line description that says what to do. `ConfigError` is for
/// configuration only (a key, a value, a refused resume); these are for what goes wrong once a job runs.

/// A running cluster failed: the learner refused an actor or cannot be reached, no batch arrived, learner ranks
/// disagree, or an update produced a non-finite parameter.
public enum ClusterError: Error, CustomStringConvertible, Equatable {
    /// The learner answered with a refusal (its detail).
    case refused(String)
    /// No usable reply from the learner within the reconnect timeout.
    case unreachable(String)
    /// No trajectory data within `cluster.batch_timeout_s`.
    case batchTimeout(String)
    /// The learner ranks' configs differ or their parameters diverged.
    case ranks(String)
    /// An update made a parameter non-finite; nothing was published or saved.
    case diverged(String)

    public var reason: String {
        switch self {
        case .refused: return "refused"
        case .unreachable: return "unreachable"
        case .batchTimeout: return "batch_timeout"
        case .ranks: return "ranks"
        case .diverged: return "diverged"
        }
    }

    public var description: String {
        switch self {
        case .refused(let detail), .unreachable(let detail), .batchTimeout(let detail), .ranks(let detail), .diverged(let detail):
            return "cluster error: \(detail)"
        }
    }
}

/// A checkpoint could not be used: it is missing, it does not decode, or it does not fit the run.
public enum CheckpointError: Error, CustomStringConvertible, Equatable {
    case missing(String)
    case invalid(String)
    case incompatible(String)

    public var reason: String {
        switch self {
        case .missing: return "missing"
        case .invalid: return "invalid"
        case .incompatible: return "incompatible"
        }
    }

    public var description: String {
        switch self {
        case .missing(let detail), .invalid(let detail), .incompatible(let detail): return "checkpoint error: \(detail)"
        }
    }
}

/// Offline training (behaviour cloning, Diffusion-QL, EDP) failed: a loss diverged, or one of its own files (the
/// critics, the resume state) is unusable or could not be written.
public enum OfflineError: Error, CustomStringConvertible, Equatable {
    case diverged(String)
    case invalidFile(String)
    case io(String)

    public var reason: String {
        switch self {
        case .diverged: return "diverged"
        case .invalidFile: return "invalid_file"
        case .io: return "io"
        }
    }

    public var description: String {
        switch self {
        case .diverged(let detail), .invalidFile(let detail), .io(let detail): return "offline error: \(detail)"
        }
    }
}
