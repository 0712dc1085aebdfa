import CMuJoCo
import Foundation
import Tensors

/// The tabletop manipulation tasks: a Lift-like task built for this project (not robomimic's Panda scenes) and a
/// longer one that needs more precision. Both have a sparse reward: 1 on the step the goal is first reached, which
/// ends the episode with success; 0 otherwise.
public enum TabletopTask: String, CaseIterable, Sendable, Codable {
    /// Lift the cube 4 cm above where it rests.
    case lift
    /// Pick the cube up and set it down, released, with its centre within 2 cm of a target on the table.
    case place
}

/// The randomisation ranges and goal thresholds of a tabletop task (metres, radians).
public struct TabletopRules: Sendable, Equatable {
    public var maxEpisodeSteps: Int
    /// The cube's half edge, and its centre's start (x, y) and yaw (about z; the fingers close along y, so a
    /// parallel grasp needs the yaw small).
    public var cubeHalfSize: ClosedRange<Double> = 0.020...0.024
    public var cubeX: ClosedRange<Double>
    public var cubeY: ClosedRange<Double> = -0.06...0.06
    public var cubeYaw: ClosedRange<Double> = -Double.pi / 4...Double.pi / 4
    /// The gripper origin's start: x and y, and its height above the table; the fingers start open.
    public var gripperX: ClosedRange<Double> = -0.03...0.03
    public var gripperY: ClosedRange<Double> = -0.03...0.03
    public var gripperZ: ClosedRange<Double> = 0.10...0.13
    /// `place`: the target's centre on the table.
    public var targetX: ClosedRange<Double> = 0.04...0.10
    public var targetY: ClosedRange<Double> = -0.06...0.06
    /// `lift`: success once the cube's centre is this far above its resting height.
    public var liftHeight = 0.04
    /// `place`: success once the cube's centre is within this distance of the target in x–y, it rests on the
    /// table (centre within 5 mm of its resting height) and both fingers are open past its faces by 4 mm.
    public var placeRadius = 0.02
    /// The largest end-effector move per control step (an action of ±1): 1.5 cm, 0.3 m/s at 20 Hz; and turn, 0.15 rad.
    public var maxDelta = 0.015
    public var maxTurn = 0.15
    /// The gripper's start yaw.
    public var gripperYaw: ClosedRange<Double> = -0.1...0.1

    public static func standard(_ task: TabletopTask) -> TabletopRules {
        switch task {
        case .lift: return TabletopRules(maxEpisodeSteps: 300, cubeX: -0.06...0.06)
        case .place: return TabletopRules(maxEpisodeSteps: 400, cubeX: -0.10...(-0.04))
        }
    }
}

/// A tabletop task in MuJoCo (`TabletopModel`), controlled at 20 Hz like robomimic's operational-space control.
///
/// **Action** [5], each in [−1, 1]: the end effector's x, y and z move for this step as a fraction of
/// `maxDelta` and its yaw turn as a fraction of `maxTurn` (the servos' targets are the current pose plus the move,
/// kept inside the workspace), and the gripper command (−1 open … +1 closed; each finger's servo target is
/// `fingerOpen`·(1 − g)/2).
///
/// **Observation** (the quantities of robomimic's Lift low-dim state, 19 numbers, in this project's conventions:
/// quaternions (w, x, y, z), differences cube minus end effector; metres): end-effector (grip point) position [3], end-effector
/// orientation quaternion (w, x, y, z) [4], finger positions [2], cube position [3], cube orientation quaternion
/// [4], cube minus end-effector position [3]; `place` adds the target's x, y [2] and the cube's x, y minus the
/// target's [2]. Lift: 19 (as robomimic's Lift state), place: 23.
///
/// The gripper's weight is compensated by a constant force on its z joint. A step allocates nothing.
/// A non-finite state, or one MuJoCo had to reset after a bad number (its instability), ends the episode with
/// reward 0 and no success.
public final class TabletopEnvironment: Environment {
    public let task: TabletopTask
    public let rules: TabletopRules
    /// This instance's own copy of the model: the cube's size and mass change per episode.
    package let model: MuJoCoModel
    package let data: MuJoCoData
    let cubeQ: Int, gripperQ: Int, fingerQ: (Int, Int)
    package let gripperZDof: Int
    let cubeGeom: Int, cubeBody: Int
    package let gripperWeight: Double
    /// The current episode's cube half edge and target, and whether its goal has been reached.
    public private(set) var cubeHalfSize = 0.02
    public private(set) var target = (x: 0.0, y: 0.0)
    public package(set) var succeeded = false

    public init(task: TabletopTask, rules: TabletopRules? = nil) throws {
        self.task = task
        self.rules = rules ?? .standard(task)
        let model = try MuJoCoModel(copying: try TabletopEnvironment.sharedModel())
        self.model = model
        data = try MuJoCoData(model: model)
        let m = model.pointer.pointee
        let joint = { (name: String) throws -> Int in try model.id(mjOBJ_JOINT, name) }
        cubeQ = Int(m.jnt_qposadr[try joint("cube")])
        gripperQ = Int(m.jnt_qposadr[try joint("gripper_x")])
        fingerQ = (Int(m.jnt_qposadr[try joint("finger_left")]), Int(m.jnt_qposadr[try joint("finger_right")]))
        gripperZDof = Int(m.jnt_dofadr[try joint("gripper_z")])
        cubeGeom = try model.id(mjOBJ_GEOM, "cube")
        cubeBody = try model.id(mjOBJ_BODY, "cube")
        gripperWeight = m.body_subtreemass[try model.id(mjOBJ_BODY, "gripper")] * -m.opt.gravity.2
        let axes = try ["gripper_y", "gripper_z", "gripper_yaw"].map { Int(m.jnt_qposadr[try joint($0)]) }
        guard axes == [gripperQ + 1, gripperQ + 2, gripperQ + 3] else { throw EnvironmentError("tabletop model: gripper joints out of order") }
    }

    /// The scene compiled once per process; each instance copies it.
    static func sharedModel() throws -> MuJoCoModel {
        lock.lock()
        defer { lock.unlock() }
        if let shared { return shared }
        let model = try MuJoCoModel(xml: TabletopModel.xml)
        shared = model
        return model
    }

    /// The servo targets' ranges: x, y, z of the gripper origin, then its yaw (a constant: `step` allocates nothing).
    private static let servoRanges = [TabletopModel.workspaceX, TabletopModel.workspaceY, TabletopModel.workspaceZ, TabletopModel.yawRange]

    /// nonisolated(unsafe): read and written only while holding `lock`.
    nonisolated(unsafe) private static var shared: MuJoCoModel?
    private static let lock = NSLock()

    public var observationDim: Int { task == .lift ? 19 : 23 }
    public var actionDim: Int { 5 }
    public var maxEpisodeSteps: Int { rules.maxEpisodeSteps }
    public var hasSuccessCriterion: Bool { true }

    /// Nominal bounds for normalisation: positions within the workspace, fingers [−0.5, 5 cm] (their soft limits give a little), quaternion ±1,
    /// differences ±0.4 m. Policies trained on data use the data's ranges instead.
    public var observationLow: [Float] { bounds.map(\.0) }
    public var observationHigh: [Float] { bounds.map(\.1) }
    public var actionLow: [Float] { [Float](repeating: -1, count: 5) }
    public var actionHigh: [Float] { [Float](repeating: 1, count: 5) }

    private var bounds: [(Float, Float)] {
        let position: [(Float, Float)] = [(-0.2, 0.2), (-0.2, 0.2), (0, 0.35)]
        let difference = [(Float, Float)](repeating: (-0.4, 0.4), count: 3)
        let quaternion = [(Float, Float)](repeating: (-1, 1), count: 4)
        var result = position + quaternion + [(-0.005, 0.05), (-0.005, 0.05)] + position + quaternion + difference
        if task == .place { result += [(-0.2, 0.2), (-0.2, 0.2), (-0.4, 0.4), (-0.4, 0.4)] }
        return result
    }

    public func reset(random: inout Philox, observation: UnsafeMutablePointer<Float>) {
        func draw(_ range: ClosedRange<Double>) -> Double { range.lowerBound + (range.upperBound - range.lowerBound) * Double(random.uniform()) }
        let size = draw(rules.cubeHalfSize)
        setCubeSize(size)
        // The constants MuJoCo derives from masses (subtree masses, the inverse weights that scale contact
        // softness) follow the new cube.
        mj_setConst(model.pointer, data.pointer)
        data.reset()
        let x = draw(rules.cubeX), y = draw(rules.cubeY), yaw = draw(rules.cubeYaw)
        target = task == .place ? (draw(rules.targetX), draw(rules.targetY)) : (0, 0)
        let q = data.qpos
        q[cubeQ] = x; q[cubeQ + 1] = y; q[cubeQ + 2] = size
        q[cubeQ + 3] = cos(yaw / 2); q[cubeQ + 4] = 0; q[cubeQ + 5] = 0; q[cubeQ + 6] = sin(yaw / 2)
        q[gripperQ] = draw(rules.gripperX); q[gripperQ + 1] = draw(rules.gripperY); q[gripperQ + 2] = draw(rules.gripperZ)
        q[gripperQ + 3] = draw(rules.gripperYaw)
        q[fingerQ.0] = TabletopModel.fingerOpen; q[fingerQ.1] = TabletopModel.fingerOpen
        for i in 0..<4 { data.ctrl[i] = q[gripperQ + i] }
        data.ctrl[4] = TabletopModel.fingerOpen; data.ctrl[5] = TabletopModel.fingerOpen
        succeeded = false
        data.forward()
        writeObservation(observation)
    }

    /// The cube's half edge, with the mass and inertia of a solid cube of `TabletopModel.cubeDensity`.
    private func setCubeSize(_ size: Double) {
        cubeHalfSize = size
        let m = model.pointer.pointee
        for axis in 0..<3 { m.geom_size[3 * cubeGeom + axis] = size }
        m.geom_rbound[cubeGeom] = size * 3.0.squareRoot()
        let mass = TabletopModel.cubeDensity * pow(2 * size, 3)
        m.body_mass[cubeBody] = mass
        for axis in 0..<3 { m.body_inertia[3 * cubeBody + axis] = mass * (2 * size) * (2 * size) / 6 }
    }

    public func step(action: UnsafePointer<Float>, observation: UnsafeMutablePointer<Float>) -> (reward: Float, terminated: Bool) {
        let q = data.qpos
        for axis in 0..<4 {
            let move = Double(min(max(action[axis], -1), 1)) * (axis < 3 ? rules.maxDelta : rules.maxTurn)
            let range = TabletopEnvironment.servoRanges[axis]
            data.ctrl[axis] = min(max(q[gripperQ + axis] + move, range.0), range.1)
        }
        let fingers = TabletopModel.fingerOpen * (1 - Double(min(max(action[4], -1), 1))) / 2
        data.ctrl[4] = fingers
        data.ctrl[5] = fingers
        data.pointer.pointee.qfrc_applied![gripperZDof] = gripperWeight
        for _ in 0..<TabletopModel.substeps { data.step() }
        writeObservation(observation)
        guard isFinite, !simulationDiverged else { return (0, true) }
        guard !succeeded, goalReached else { return (0, false) }
        succeeded = true
        return (1, true)
    }

    /// Whether the state meets the task's goal (`TabletopRules`).
    public var goalReached: Bool {
        let q = data.qpos
        switch task {
        case .lift:
            return q[cubeQ + 2] > cubeHalfSize + rules.liftHeight
        case .place:
            let dx = q[cubeQ] - target.x, dy = q[cubeQ + 1] - target.y
            let released = q[fingerQ.0] > cubeHalfSize + 0.004 && q[fingerQ.1] > cubeHalfSize + 0.004
            return (dx * dx + dy * dy).squareRoot() < rules.placeRadius && q[cubeQ + 2] < cubeHalfSize + 0.005 && released
        }
    }

    /// The cube's centre (x, y, z) and the gripper origin's (x, y, z), for tests and the scripted demonstrator.
    public var cubePosition: (Double, Double, Double) { (data.qpos[cubeQ], data.qpos[cubeQ + 1], data.qpos[cubeQ + 2]) }
    public var gripperPosition: (Double, Double, Double) { (data.qpos[gripperQ], data.qpos[gripperQ + 1], data.qpos[gripperQ + 2]) }
    public var gripperYaw: Double { data.qpos[gripperQ + 3] }
    public var fingerPositions: (Double, Double) { (data.qpos[fingerQ.0], data.qpos[fingerQ.1]) }
    /// Active contacts, and the deepest penetration among them (metres, ≥ 0).
    public var contacts: (count: Int, deepest: Double) {
        let d = data.pointer.pointee
        var deepest = 0.0
        for i in 0..<Int(d.ncon) { deepest = max(deepest, -d.contact[i].dist) }
        return (Int(d.ncon), deepest)
    }

    /// MuJoCo found a bad number in qpos, qvel or qacc during this episode. `mj_step` then resets the state to
    /// the model's initial pose by itself and steps on, so the state looks finite; the episode must still end.
    /// (`mj_resetData` in `reset` clears the counts.)
    private var simulationDiverged: Bool {
        let warnings = data.pointer.pointee.warning
        return warnings.4.number + warnings.5.number + warnings.6.number > 0
    }

    private var isFinite: Bool {
        for i in 0..<model.positionCount where !data.qpos[i].isFinite { return false }
        for i in 0..<model.velocityCount where !data.qvel[i].isFinite { return false }
        return true
    }

    private func writeObservation(_ o: UnsafeMutablePointer<Float>) {
        let q = data.qpos
        let grip = (q[gripperQ], q[gripperQ + 1], q[gripperQ + 2] + TabletopModel.gripOffset)
        let yaw = q[gripperQ + 3]
        o[0] = Float(grip.0); o[1] = Float(grip.1); o[2] = Float(grip.2)
        o[3] = Float(cos(yaw / 2)); o[4] = 0; o[5] = 0; o[6] = Float(sin(yaw / 2))
        o[7] = Float(q[fingerQ.0]); o[8] = Float(q[fingerQ.1])
        for i in 0..<7 { o[9 + i] = Float(q[cubeQ + i]) }
        o[16] = Float(q[cubeQ] - grip.0); o[17] = Float(q[cubeQ + 1] - grip.1); o[18] = Float(q[cubeQ + 2] - grip.2)
        if task == .place {
            o[19] = Float(target.x); o[20] = Float(target.y)
            o[21] = Float(q[cubeQ] - target.x); o[22] = Float(q[cubeQ + 1] - target.y)
        }
    }
}
