import XCTest
import Foundation

/// `cluster/slurm.sbatch` under a real Slurm (`scripts/slurm_check.sh`: a private one-node Slurm this test starts and
/// stops by PID): the learner as 2 MPI ranks with 2 actors on one node, and a job requeued mid-run that resumes its
/// run directory and finishes with every iteration once. Root only; it installs Debian's slurm-wlm and munge when
/// they are missing (CI runs it as root).
final class SlurmTests: XCTestCase {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    func testSlurmBatchJobsRunAndARequeuedJobResumes() throws {
        guard getuid() == 0 else { throw XCTSkip("the Slurm test starts its own slurmctld and slurmd, which needs root") }
        try installSlurmIfMissing()
        _ = try LearnerRanksTests.mpirun() // Open MPI, for the 2 learner ranks
        let binary = try FaultRestartTests.dppoBinary()
        let directory = try makeTemporaryDirectory("dppo-slurm")
        let output = directory.appendingPathComponent("check.out")
        FileManager.default.createFile(atPath: output.path, contents: nil)
        // Output to a file, not a pipe: the daemons the script starts would hold a pipe's write end open.
        let handle = try FileHandle(forWritingTo: output)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = [Self.repository.appendingPathComponent("scripts/slurm_check.sh").path, directory.appendingPathComponent("slurm").path,
                             binary.path]
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        let deadline = Date().addingTimeInterval(420)
        while process.isRunning && Date() < deadline { usleep(100_000) }
        if process.isRunning {
            // SIGTERM: the script's trap stops every daemon it started, by PID.
            kill(process.processIdentifier, SIGTERM)
            process.waitUntilExit()
        }
        try handle.close()
        let text = try String(contentsOf: output, encoding: .utf8)
        XCTAssertEqual(process.terminationStatus, 0, text)
        XCTAssertTrue(text.contains("ok: job 1: learner as 2 MPI ranks and 2 actors on one node; iterations 0 1 2 3"), text)
        XCTAssertTrue(text.contains("ok: job 2: requeued after iteration 3 (Restarts=1), resumed the same directory, iterations 0 1 2 3 4 5 6 7 8 9 10"), text)
        XCTAssertTrue(text.contains("ok: job 2b: a directory with metrics and no checkpoint: the earlier attempt kept in attempts/, iterations 0 1 2"), text)
        XCTAssertTrue(text.contains("seeds 1 and 2 finished in their own directories"), text)
        // Three nodes need network namespaces; where they cannot be made the script says so and runs the rest.
        XCTAssertTrue(text.contains("ok: job 4: three nodes in their own network namespaces; learner as 2 MPI ranks on n1 and n2, 2 actors on n3; iterations 0 1 2 3")
                      || text.contains("skipped: job 4 (three nodes): network namespaces could not be created here"), text)
        print(text)
    }

    func installSlurmIfMissing() throws {
        let needed = ["/usr/sbin/slurmctld", "/usr/sbin/slurmd", "/usr/sbin/munged", "/usr/bin/sbatch"]
        guard !needed.allSatisfy({ FileManager.default.isExecutableFile(atPath: $0) }) else { return }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/apt-get")
        process.arguments = ["install", "-y", "-q", "slurm-wlm", "munge"]
        process.environment = ProcessInfo.processInfo.environment.merging(["DEBIAN_FRONTEND": "noninteractive"]) { $1 }
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        guard needed.allSatisfy({ FileManager.default.isExecutableFile(atPath: $0) }) else {
            if ProcessInfo.processInfo.environment["CI"] == "true" { throw FaultRestartTests.Failure("could not install slurm-wlm and munge") }
            throw XCTSkip("slurm-wlm and munge are missing and apt-get could not install them")
        }
    }
}
