/// What built this binary, for `dppo --version` and for every run's record of what produced it (summary.json).
public enum Build {
    public static let version = "0.12.0"
    /// `git describe --always --dirty` of the checkout at build time (the BuildInfo plugin), or `unknown`.
    public static let commit = buildCommit
    #if DEBUG
    public static let configuration = "debug"
    #else
    public static let configuration = "release"
    #endif

    /// `0.10.0 (commit 3ea5b514b5b3, release build)`
    public static var description: String { "\(version) (commit \(commit), \(configuration) build)" }
}
