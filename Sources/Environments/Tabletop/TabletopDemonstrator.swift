import Foundation
import Tensors

/// A scripted controller for the tabletop tasks whose demonstrations are multimodal on purpose: each episode
/// grasps the cube along one of two axes, chosen at random. With the fingers closing along the gripper's y axis,
/// `alongY` turns the gripper to the cube's yaw and `alongX` a quarter turn further (to whichever side is nearer).
/// The average of the two, an eighth of a turn, closes the fingers on the cube's edges, where the grasp slips: a
/// policy that averages the modes fails, one that picks a mode succeeds.
///
/// It works from the observation alone (`TabletopEnvironment`'s layout): hover above the cube with the gripper
/// turned, descend until the grip point is at the cube's centre, close, lift; for `place`, carry the cube over the
/// target, lower it until it rests, open and retreat. A cube that slips out of the fingers sends it back to the
/// hover. Gaussian noise of `noise` (in action units) is added to every move and turn.
public struct TabletopDemonstrator: Sendable {
    public enum Mode: String, CaseIterable, Sendable {
        case alongY = "grasp_y", alongX = "grasp_x"
    }

    enum Phase { case hover, descend, close, lift, carry, lower, release, retreat }

    public let task: TabletopTask
    public let rules: TabletopRules
    public let mode: Mode
    public let noise: Double
    /// Tests only: turn to the cube's yaw plus this instead of the mode's angle (π/4: the modes' average).
    let yawOffset: Double?
    private var phase = Phase.hover
    private var timer = 0

    public init(task: TabletopTask, rules: TabletopRules? = nil, mode: Mode, noise: Double) {
        self.init(task: task, rules: rules, mode: mode, noise: noise, yawOffset: nil)
    }

    init(task: TabletopTask, rules: TabletopRules?, mode: Mode, noise: Double, yawOffset: Double?) {
        self.task = task
        self.rules = rules ?? .standard(task)
        self.mode = mode
        self.noise = noise
        self.yawOffset = yawOffset
    }

    /// Writes the action [5] for `o`, the observation of the current step.
    public mutating func act(observation o: UnsafePointer<Float>, random: inout Philox, action: UnsafeMutablePointer<Float>) {
        let grip = (Double(o[0]), Double(o[1]), Double(o[2]))
        let yaw = 2 * atan2(Double(o[6]), Double(o[3]))
        let fingers = (Double(o[7]) + Double(o[8])) / 2
        let cube = (Double(o[9]), Double(o[10]), Double(o[11]))
        let cubeYaw = 2 * atan2(Double(o[15]), Double(o[12]))
        let offset = (Double(o[16]), Double(o[17]), Double(o[18]))
        let held = (offset.0 * offset.0 + offset.1 * offset.1 + offset.2 * offset.2).squareRoot() < 0.03
        var goalYaw = cubeYaw
        if let yawOffset { goalYaw += yawOffset } else if mode == .alongX { goalYaw += cubeYaw < 0 ? Double.pi / 2 : -Double.pi / 2 }

        var waypoint = grip
        var close = false
        timer += 1
        switch phase {
        case .hover:
            waypoint = (cube.0, cube.1, cube.2 + 0.06)
            if distance(grip, waypoint) < 0.01 && abs(goalYaw - yaw) < 0.05 { advance(to: .descend) }
        case .descend:
            waypoint = (cube.0, cube.1, max(cube.2, 0.024))
            if distance(grip, waypoint) < 0.005 || timer > 40 { advance(to: .close) }
        case .close:
            waypoint = (cube.0, cube.1, max(cube.2, 0.024))
            close = true
            if timer >= 6 { advance(to: .lift) }
        case .lift:
            waypoint = (grip.0, grip.1, 0.12)
            close = true
            if !held { advance(to: .hover) } else if task == .place && grip.2 > 0.09 { advance(to: .carry) }
        case .carry:
            let dx = Double(o[21]), dy = Double(o[22])
            waypoint = (grip.0 - dx, grip.1 - dy, 0.10)
            close = true
            if !held { advance(to: .hover) } else if (dx * dx + dy * dy).squareRoot() < 0.005 { advance(to: .lower) }
        case .lower:
            let dx = Double(o[21]), dy = Double(o[22])
            // The cube rests when its centre is its half edge above the table; closed on it, each finger is there.
            waypoint = (grip.0 - dx, grip.1 - dy, grip.2 - (cube.2 - (fingers + 0.001)))
            close = true
            if !held { advance(to: .hover) } else if cube.2 < fingers + 0.003 || timer > 30 { advance(to: .release) }
        case .release:
            if timer >= 5 { advance(to: .retreat) }
        case .retreat:
            waypoint = (grip.0, grip.1, 0.12)
        }
        let moves = [waypoint.0 - grip.0, waypoint.1 - grip.1, waypoint.2 - grip.2]
        for axis in 0..<3 { action[axis] = Float(clip(moves[axis] / rules.maxDelta + noise * Double(random.normal()))) }
        let turn = phase == .hover || phase == .descend ? goalYaw - yaw : 0
        action[3] = Float(clip(turn / rules.maxTurn + noise * Double(random.normal())))
        action[4] = close ? 1 : -1
    }

    private mutating func advance(to next: Phase) {
        phase = next
        timer = 0
    }

    private func distance(_ a: (Double, Double, Double), _ b: (Double, Double, Double)) -> Double {
        ((a.0 - b.0) * (a.0 - b.0) + (a.1 - b.1) * (a.1 - b.1) + (a.2 - b.2) * (a.2 - b.2)).squareRoot()
    }

    private func clip(_ value: Double) -> Double { min(max(value, -1), 1) }
}
