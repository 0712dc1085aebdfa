import XCTest
import Foundation
@testable import Cluster
import Tensors

/// The learner and its actors on three "hosts": network namespaces this test creates, joined by veth pairs with
/// private /30 links (10.213.k.0/30 between the learner's namespace and actor namespace k) that exist only inside
/// them. Everything the test starts is killed by PID and the namespaces are deleted in `tearDown`, also after a
/// failure. The plan tests check `cluster/launch-ssh.sh` and `cluster/slurm.sbatch` without SSH or Slurm.
final class FaultMultiHostTests: XCTestCase {
    static let iterations = 2
    /// Environment steps per iteration: 2 actors × 3 environments × 200 decisions × 2 actions per decision.
    static let stepsPerIteration = 2 * 3 * 200 * 2
    /// The learner's address on its link to actor namespace 1; actor namespace 2 reaches it through its own link.
    static let learnerAddress = "10.213.1.1"

    var directory: URL!
    var children: [Child] = []
    var namespaces: [String] = []
    var ip: String!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("dppo-multihost-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDown() {
        for child in children { child.kill() }
        children = []
        for namespace in namespaces {
            // Whatever still runs inside a namespace of ours (a remote actor the launcher failed to stop) goes first.
            let pids = (try? Self.run(ip, ["netns", "pids", namespace]).output) ?? ""
            for pid in pids.split(separator: "\n").compactMap({ pid_t($0) }) { kill(pid, SIGKILL) }
            _ = try? Self.run(ip, ["netns", "delete", namespace])
        }
        namespaces = []
        try? FileManager.default.removeItem(at: directory)
    }

    // MARK: - Runs across namespaces

    /// `dppo learner` in one namespace and one `dppo actor` in each of two others complete a run over the links. The
    /// learner asks for seeded chains (only its command line says so: actors follow what it tells them), so the actors'
    /// chains cross the links as seeds and are rebuilt in another process.
    func testLearnerAndActorsInSeparateNamespaces() throws {
        let binary = try FaultRestartTests.dppoBinary()
        try createNetwork()
        let (config, start) = try prepare(iterations: Self.iterations)
        let run = directory.appendingPathComponent("run")
        let learner = try launch(in: namespaces[0], binary.path, ["learner", "--config", config, "--run-dir", run.path, "--base-policy", start,
                                                                  "--set", "cluster.chain_transport=seeded", "--set", "cluster.chain_check_every=3"],
                                 log: "learner")
        for (index, namespace) in namespaces.dropFirst().enumerated() {
            try launch(in: namespace, binary.path, ["actor", "--config", config, "--learner", Self.learnerAddress, "--index", String(index)],
                       log: "actor-\(index)")
        }

        XCTAssertTrue(learner.wait(seconds: 60), "learner did not finish:\n\(logs())")
        XCTAssertEqual(learner.status, 0, "learner failed:\n\(logs())")
        let summary = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: run.appendingPathComponent("summary.json"))) as? [String: Any])
        XCTAssertEqual(summary["env_steps"] as? Int, Self.iterations * Self.stepsPerIteration)
        XCTAssertEqual(summary["policy_version"] as? Int, Self.iterations + 1)
        XCTAssertEqual(summary["chain_transport"] as? String, "seeded", "no check failed across processes")
        let records = try String(contentsOf: run.appendingPathComponent("metrics.jsonl"), encoding: .utf8).split(separator: "\n")
            .compactMap { try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }.filter { $0["transport/chain_checks"] != nil }
        XCTAssertEqual(records.count, Self.iterations)
        XCTAssertGreaterThan(records.reduce(0) { $0 + ($1["transport/chain_checks"] as? Int ?? 0) }, 0)
        XCTAssertGreaterThan(records.reduce(0) { $0 + ($1["transport/chain_rebuilt_decisions"] as? Int ?? 0) }, 0)
        for actor in children.dropFirst() {
            XCTAssertTrue(actor.wait(seconds: 20), "actors exit when the run is over:\n\(actor.logTail())")
            XCTAssertEqual(actor.status, 0, actor.logTail())
        }
    }

    /// A network partition between actor 1 and the learner heals on its own: the link to actor 1's namespace goes down
    /// after the first iteration for longer than `learner_timeout_s`, then comes back. The actor notices the silence,
    /// keeps saying hello until the learner answers again, and the run completes with every iteration's exact steps;
    /// nothing is restarted by hand.
    func testNetworkPartitionHealsOnItsOwn() throws {
        let binary = try FaultRestartTests.dppoBinary()
        try createNetwork()
        let iterations = 5
        let (config, start) = try prepare(iterations: iterations)
        let run = directory.appendingPathComponent("run")
        let learner = try launch(in: namespaces[0], binary.path, ["learner", "--config", config, "--run-dir", run.path, "--base-policy", start],
                                 log: "learner")
        for (index, namespace) in namespaces.dropFirst().enumerated() {
            try launch(in: namespace, binary.path, ["actor", "--config", config, "--learner", Self.learnerAddress, "--index", String(index)],
                       log: "actor-\(index)")
        }
        let firstIteration = Date().addingTimeInterval(60)
        while !metricsIterations(run).contains(1) {
            guard learner.isRunning, Date() < firstIteration else { return XCTFail("no first iteration:\n\(logs())") }
            usleep(50_000)
        }
        // The learner's end of actor 1's link goes down: actor 1's end loses its carrier but keeps its routes, as in a
        // real partition (taking the actor's end down would delete its route to the learner, which no healing restores).
        let learnerLink = "dt\(getpid())l2"
        try runIP(["-n", namespaces[0], "link", "set", learnerLink, "down"])
        let partitioned = Date()
        // Longer than learner_timeout_s (3 s): the actor gives the learner up for gone and starts saying hello again.
        Thread.sleep(forTimeInterval: 8)
        let iterationsDuringPartition = metricsIterations(run).max() ?? 0
        try runIP(["-n", namespaces[0], "link", "set", learnerLink, "up"])
        let healed = Date()

        XCTAssertTrue(learner.wait(seconds: 90), "learner did not finish after the partition healed:\n\(logs())")
        XCTAssertEqual(learner.status, 0, "learner failed:\n\(logs())")
        XCTAssertLessThan(iterationsDuringPartition, iterations, "the partition must fall inside the run")
        let summary = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: run.appendingPathComponent("summary.json"))) as? [String: Any])
        XCTAssertEqual(summary["env_steps"] as? Int, iterations * Self.stepsPerIteration)
        XCTAssertEqual(summary["policy_version"] as? Int, iterations + 1)
        XCTAssertEqual(metricsIterations(run).filter { $0 > 0 }, Array(1...iterations), "each iteration exactly once")
        let actorLog = children[2].logTail(lines: 200)
        XCTAssertTrue(actorLog.contains("saying hello again"), "actor 1 noticed the partition:\n\(actorLog)")
        XCTAssertTrue(actorLog.contains("rejoined"), "actor 1 rejoined by itself:\n\(actorLog)")
        for actor in children.dropFirst() {
            XCTAssertTrue(actor.wait(seconds: 20), "actors exit when the run is over:\n\(actor.logTail())")
            XCTAssertEqual(actor.status, 0, actor.logTail())
        }
        print(String(format: "partition: %.1f s down, run finished %.1f s after it healed", healed.timeIntervalSince(partitioned), Date().timeIntervalSince(healed)))
    }

    /// `cluster/launch-ssh.sh` in the learner's namespace, with `ssh` replaced by a stand-in that runs the remote
    /// command in the namespace named by the host: actors join with their global indices, their output comes back
    /// into `logs/actor-HOST-I.log`, and stopping the launcher stops the remote actors (nothing is left running
    /// in any namespace).
    func testSSHLauncherStartsAndStopsRemoteActors() throws {
        let binary = try FaultRestartTests.dppoBinary()
        try createNetwork()
        let (config, start) = try prepare(iterations: 100)
        let hosts = directory.appendingPathComponent("hosts")
        try "# the learner's namespace runs the launcher\na1 actors=1\na2 actors=1 bin=\(binary.path)\n".write(to: hosts, atomically: true, encoding: .utf8)
        let ssh = try writeStandInSSH()
        let run = directory.appendingPathComponent("run")
        let launcher = try launch(in: namespaces[0], "/usr/bin/env", [
            "DPPO_SSH=\(ssh)", "/bin/bash", Self.repository.appendingPathComponent("cluster/launch-ssh.sh").path, config,
            "--hosts", hosts.path, "--bin", binary.path, "--learner-address", Self.learnerAddress, "--remote-dir", directory.path,
            "--run-dir", run.path, "--set", "pretrain.checkpoint=\(start)",
        ], log: "launcher")

        let logs = run.appendingPathComponent("logs")
        let firstIteration = Date().addingTimeInterval(60)
        while !metricsIterations(run).contains(1) {
            guard launcher.isRunning else { return XCTFail("the launcher exited first:\n\(launcher.logTail())\n\(allLogs(in: logs))") }
            guard Date() < firstIteration else { return XCTFail("no first iteration within 60 s:\n\(launcher.logTail())\n\(allLogs(in: logs))") }
            usleep(50_000)
        }
        for (host, index) in [("a1", 0), ("a2", 1)] {
            let log = (try? String(contentsOf: logs.appendingPathComponent("actor-\(host)-\(index).log"), encoding: .utf8)) ?? ""
            XCTAssertTrue(log.contains("actor \(index): joined"), "actor \(index) on \(host):\n\(log)")
        }

        kill(launcher.process.processIdentifier, SIGTERM)
        XCTAssertTrue(launcher.wait(seconds: 20), "the launcher did not stop:\n\(launcher.logTail())")
        let stopped = Date().addingTimeInterval(15)
        var running: [String: String] = [:]
        repeat {
            running = [:]
            for namespace in namespaces {
                let pids = try Self.run(ip, ["netns", "pids", namespace]).output.trimmingCharacters(in: .whitespacesAndNewlines)
                if !pids.isEmpty { running[namespace] = pids }
            }
            if running.isEmpty { break }
            usleep(100_000)
        } while Date() < stopped
        XCTAssertEqual(running, [:], "processes left after the launcher stopped:\n\(allLogs(in: logs))")
    }

    // MARK: - Plans

    /// The SSH plan: global indices in host-file order, per-host binaries and users, the config copied to every
    /// host, the learner listening beyond loopback, the key file's path (never a key) passed on.
    func testSSHPlanAssignsGlobalIndices() throws {
        let hosts = directory.appendingPathComponent("hosts")
        try """
        # two machines
        node-a actors=2   # the big one

        node-b actors=1 bin=/opt/dppo/bin/dppo user=rl
        """.write(to: hosts, atomically: true, encoding: .utf8)
        // The launcher asks the binary for the resolved config, so the plan needs a real one.
        let local = try FaultRestartTests.dppoBinary().path
        let script = Self.repository.appendingPathComponent("cluster/launch-ssh.sh").path
        let arguments = [script, "configs/pendulum/finetune.yaml", "--hosts", hosts.path, "--bin", local,
                         "--learner-address", "10.0.0.5", "--run-dir", "runs/plan", "--set", "seed=3", "--print-plan"]
        let plan = try Self.run("/bin/bash", arguments, environment: ["DPPO_CLUSTER_KEY_FILE": "/etc/dppo/cluster.key"])
        XCTAssertEqual(plan.status, 0, plan.output)
        let lines = plan.output.split(separator: "\n").map(String.init)
        let actors = lines.filter { $0.hasPrefix("actor ") }
        XCTAssertEqual(actors.count, 3, plan.output)
        for (line, (index, host, binary)) in zip(actors, [(0, "node-a", local), (1, "node-a", local),
                                                          (2, "node-b", "/opt/dppo/bin/dppo")]) {
            XCTAssertTrue(line.hasPrefix("actor \(index) \(host) runs/plan/logs/actor-\(host)-\(index).log: ssh -o BatchMode=yes "), line)
            XCTAssertTrue(line.contains(" \(binary) actor --config \(Self.repository.path)/runs/plan/actor-config.yaml --learner 10.0.0.5 --index \(index) --set seed=3 --set cluster.actors=3 "), line)
            XCTAssertTrue(line.contains("DPPO_CLUSTER_KEY_FILE=/etc/dppo/cluster.key "), line)
        }
        XCTAssertTrue(actors[2].contains("-l rl node-b -- "), actors[2])
        XCTAssertEqual(lines.filter { $0.hasPrefix("config ") }.count, 2, plan.output)
        let learner = try XCTUnwrap(lines.first { $0.hasPrefix("learner: ") })
        XCTAssertTrue(learner.hasPrefix("learner: \(local) learner --config configs/pendulum/finetune.yaml --set seed=3 --set cluster.actors=3 --set cluster.host=0.0.0.0 --run-dir runs/plan"), learner)

        let refused = try Self.run("/bin/bash", arguments, environment: ["DPPO_CLUSTER_KEY": String(repeating: "ab", count: 32)])
        XCTAssertEqual(refused.status, 2)
        XCTAssertTrue(refused.output.contains("DPPO_CLUSTER_KEY_FILE"), refused.output)
        XCTAssertFalse(refused.output.contains("abab"), "the key is never printed")

        try "node-a actors=two\n".write(to: hosts, atomically: true, encoding: .utf8)
        let malformed = try Self.run("/bin/bash", arguments)
        XCTAssertEqual(malformed.status, 2)
        XCTAssertTrue(malformed.output.contains("hosts:1: node-a needs actors=N"), malformed.output)
    }

    /// The Slurm plan from a made-up allocation and a stand-in `scontrol`: the learner on the first node (or as MPI
    /// ranks on the first nodes), one actor step over the others with task ranks as actor indices; on one node, both.
    func testSlurmPlanPutsTheLearnerOnTheFirstNode() throws {
        let script = Self.repository.appendingPathComponent("cluster/slurm.sbatch").path
        XCTAssertEqual(try Self.run("/bin/bash", ["-n", script]).status, 0, "syntax")
        let local = try FaultRestartTests.dppoBinary().path // resolves the config, as under Slurm
        let bin = directory.appendingPathComponent("bin")
        try FileManager.default.createDirectory(at: bin, withIntermediateDirectories: true)
        let scontrol = bin.appendingPathComponent("scontrol")
        try "#!/bin/sh\n[ \"$1 $2 $3\" = \"show hostnames node[07-09]\" ] || exit 1\nprintf 'node07\\nnode08\\nnode09\\n'\n"
            .write(to: scontrol, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: scontrol.path)
        let environment = ["PATH": "\(bin.path):/usr/bin:/bin", "SLURM_JOB_NODELIST": "node[07-09]", "SLURM_JOB_NUM_NODES": "3",
                           "SLURM_JOB_ID": "4242", "SLURM_NTASKS_PER_NODE": "3", "DPPO_BIN": local,
                           "DPPO_CLUSTER_KEY_FILE": "/etc/dppo/cluster.key"]
        let plan = try Self.run("/bin/bash", [script, "configs/pendulum/finetune.yaml", "--set", "seed=3", "--print-plan"], environment: environment)
        XCTAssertEqual(plan.status, 0, plan.output)
        XCTAssertTrue(plan.output.contains("learner: \(local) learner --config configs/pendulum/finetune.yaml --set seed=3 --set cluster.actors=6 --set cluster.host=0.0.0.0 --run-dir runs/pendulum-dppo/4242 "), plan.output)
        XCTAssertTrue(plan.output.contains("actors: srun --nodes=2 --ntasks=6 --ntasks-per-node=3 --relative=1 "), plan.output)
        XCTAssertTrue(plan.output.contains("--output=runs/pendulum-dppo/4242/logs/actor-%N-%t.log "), plan.output)
        XCTAssertTrue(plan.output.contains("--learner node07 --set seed=3 --set cluster.actors=6"), plan.output)
        // The values come from the binary's resolved config, so --set reaches them (the name names the run directory)…
        let renamed = try Self.run("/bin/bash", [script, "configs/pendulum/finetune.yaml", "--set", "name=other", "--print-plan"], environment: environment)
        XCTAssertTrue(renamed.output.contains("--run-dir runs/other/4242 "), renamed.output)
        // …and without a cluster key the learner would listen unauthenticated on every interface: refused.
        var keyless = environment
        keyless["DPPO_CLUSTER_KEY_FILE"] = nil
        let refused = try Self.run("/bin/bash", [script, "configs/pendulum/finetune.yaml", "--print-plan"], environment: keyless)
        XCTAssertEqual(refused.status, 2, refused.output)
        XCTAssertTrue(refused.output.contains("cluster.allow_unauthenticated=true"), refused.output)
        let allowed = try Self.run("/bin/bash", [script, "configs/pendulum/finetune.yaml", "--set", "cluster.allow_unauthenticated=true", "--print-plan"],
                                   environment: keyless)
        XCTAssertEqual(allowed.status, 0, allowed.output)

        // The learner as 4 MPI ranks on the first 2 nodes: one srun step with PMIx; the actors on the third.
        let ranked = try Self.run("/bin/bash", [script, "configs/pendulum/finetune.yaml", "--learner-nodes", "2", "--learner-ranks", "4", "--print-plan"],
                                  environment: environment)
        XCTAssertEqual(ranked.status, 0, ranked.output)
        XCTAssertTrue(ranked.output.contains("learner: srun --nodes=2 --ntasks=4 --relative=0 --mpi=pmix --kill-on-bad-exit=1 \(local) learner "),
                      ranked.output)
        XCTAssertTrue(ranked.output.contains("actors: srun --nodes=1 --ntasks=3 --ntasks-per-node=3 --relative=2 "), ranked.output)
        let none = try Self.run("/bin/bash", [script, "configs/pendulum/finetune.yaml", "--learner-nodes", "3", "--learner-ranks", "3", "--print-plan"],
                                environment: environment)
        XCTAssertEqual(none.status, 2)
        XCTAssertTrue(none.output.contains("leaves none of the 3 nodes for actors"), none.output)

        // One node: the learner and its actors share it, the actor step overlapping the learner's CPUs.
        var single = environment
        single["SLURM_JOB_NUM_NODES"] = "1"
        single["SLURM_JOB_NODELIST"] = "node[07-09]"
        let shared = try Self.run("/bin/bash", [script, "configs/pendulum/finetune.yaml", "--print-plan"], environment: single)
        XCTAssertEqual(shared.status, 0, shared.output)
        XCTAssertTrue(shared.output.contains("actors: srun --nodes=1 --ntasks=3 --ntasks-per-node=3 --relative=0 --overlap "), shared.output)
        XCTAssertEqual(try Self.run("/bin/bash", ["-n", Self.repository.appendingPathComponent("cluster/launch-ssh.sh").path]).status, 0)
    }

    // MARK: - Support

    /// The repository root (this file is Tests/ClusterTests/FaultMultiHostTests.swift); the scripts' plans name
    /// configs relative to it.
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// Creates namespaces `dppo-test-PID-l`, `-a1`, `-a2` and a veth pair from the first to each of the others;
    /// skips the test where that is not allowed.
    func createNetwork() throws {
        guard getuid() == 0 else { throw XCTSkip("network namespaces need root (ip netns add); run the tests as root to include them") }
        guard let found = ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"].first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            throw XCTSkip("no `ip` command (iproute2) to create network namespaces")
        }
        ip = found
        let pid = getpid()
        let learner = "dppo-test-\(pid)-l"
        let probe = try Self.run(ip, ["netns", "add", learner])
        guard probe.status == 0 else { throw XCTSkip("cannot create a network namespace here (ip netns add: \(probe.output.trimmingCharacters(in: .whitespacesAndNewlines)))") }
        namespaces = [learner]
        try runIP(["-n", learner, "link", "set", "lo", "up"])
        for link in 1...2 {
            let actor = "dppo-test-\(pid)-a\(link)"
            try runIP(["netns", "add", actor])
            namespaces.append(actor)
            let (learnerEnd, actorEnd) = ("dt\(pid)l\(link)", "dt\(pid)a\(link)")
            try runIP(["link", "add", learnerEnd, "netns", learner, "type", "veth", "peer", "name", actorEnd, "netns", actor])
            try runIP(["-n", learner, "addr", "add", "10.213.\(link).1/30", "dev", learnerEnd])
            try runIP(["-n", actor, "addr", "add", "10.213.\(link).2/30", "dev", actorEnd])
            try runIP(["-n", learner, "link", "set", learnerEnd, "up"])
            try runIP(["-n", actor, "link", "set", "lo", "up"])
            try runIP(["-n", actor, "link", "set", actorEnd, "up"])
            // The learner's other link addresses (10.213.1.1 for actor 2) are reached through this link.
            try runIP(["-n", actor, "route", "add", "10.213.0.0/16", "via", "10.213.\(link).1"])
        }
    }

    func runIP(_ arguments: [String]) throws {
        let result = try Self.run(ip, arguments)
        guard result.status == 0 else { throw FaultRestartTests.Failure("ip \(arguments.joined(separator: " ")) failed: \(result.output)") }
    }

    /// A stand-in for `ssh` (options ignored, host = the namespace `dppo-test-PID-HOST`): runs the command under
    /// `sh` there with its stdin fed from ours, and like ssh's connection closing, stopping it ends that stdin.
    func writeStandInSSH() throws -> String {
        let url = directory.appendingPathComponent("ssh")
        try """
        #!/usr/bin/env bash
        set -u
        while [ $# -gt 0 ]; do
          case "$1" in -o|-l) shift 2 ;; --) shift; break ;; *) host=$1; shift ;; esac
        done
        exec 3<&0
        stdin=$(mktemp -u) && mkfifo "$stdin"
        \(ip!) netns exec "dppo-test-\(getpid())-$host" sh -c "$*" < "$stdin" &
        remote=$!
        cat <&3 > "$stdin" &
        forwarder=$!
        stop() { kill "$forwarder" 2>/dev/null; wait "$remote"; rm -f "$stdin"; exit 255; }
        trap stop TERM HUP INT
        wait "$remote"; status=$?
        kill "$forwarder" 2>/dev/null; rm -f "$stdin"; exit $status

        """.write(to: url, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: url.path)
        return url.path
    }

    /// The tiny run's config (the learner listening on every interface of its namespace) and a random starting policy.
    func prepare(iterations: Int) throws -> (config: String, start: String) {
        let yaml = """
        name: multihost
        env: {task: pendulum, n_envs: 3, act_steps: 2, horizon_steps: 2}
        model: {denoising_steps: 4, ft_denoising_steps: 2, time_dim: 4, mlp_dims: [16, 16, 16], critic_dims: [16, 16, 16]}
        train: {n_train_itr: \(iterations), n_steps: 200, batch_size: 400, update_epochs: 2, val_freq: 100, eval_episodes: 2, save_model_freq: 0}
        cluster: {actors: 2, host: 0.0.0.0, allow_unauthenticated: true, base_port: 25555, segment_steps: 20, batch_timeout_s: 40, learner_timeout_s: 3, reconnect_timeout_s: 60}
        """
        let configURL = directory.appendingPathComponent("config.yaml")
        try yaml.write(to: configURL, atomically: true, encoding: .utf8)
        let config = try RunConfig.parse(yaml: yaml)
        let model = PolicyModel(config: config)
        var random = Philox(seed: 1)
        model.initialize(random: &random)
        let start = directory.appendingPathComponent("start.safetensors")
        try Checkpoint.save(model: model, update: nil, info: CheckpointInfo(kind: "pretrain", iteration: 0, policyVersion: 0, environmentSteps: 0,
                                                                            model: model, normalization: nil), to: start)
        return (configURL.path, start.path)
    }

    /// Starts `executable arguments` inside `namespace` (`ip netns exec` execs it, so the child's PID is its own).
    @discardableResult
    func launch(in namespace: String, _ executable: String, _ arguments: [String], log name: String) throws -> Child {
        let child = try Child(binary: URL(fileURLWithPath: ip), arguments: ["netns", "exec", namespace, executable] + arguments,
                              log: directory.appendingPathComponent("\(name).log"))
        children.append(child)
        return child
    }

    func metricsIterations(_ run: URL) -> [Int] {
        let text = (try? String(contentsOf: run.appendingPathComponent("metrics.jsonl"), encoding: .utf8)) ?? ""
        return text.split(separator: "\n").compactMap { (try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])?["iteration"] as? Int }
    }

    func logs() -> String {
        children.map { "== \($0.logURL.lastPathComponent) (status \($0.status.map(String.init) ?? "running")):\n\($0.logTail())" }.joined(separator: "\n")
    }

    func allLogs(in folder: URL) -> String {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: folder.path).sorted()) ?? []
        return names.map { name in
            let text = (try? String(contentsOf: folder.appendingPathComponent(name), encoding: .utf8)) ?? ""
            return "== \(name):\n" + text.split(separator: "\n").suffix(15).joined(separator: "\n")
        }.joined(separator: "\n")
    }

    /// Runs a command to completion; its stdout and stderr together. `environment` is added to this process's.
    @discardableResult
    static func run(_ executable: String, _ arguments: [String], environment: [String: String] = [:]) throws -> (status: Int32, output: String) {
        try runToEnd(URL(fileURLWithPath: executable), arguments, in: repository, environment: environment)
    }
}
