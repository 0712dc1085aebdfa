import Foundation
import Tensors

/// Pendulum swing-up with the dynamics, reward and limits of Gymnasium's Pendulum-v1:
/// θ̈ = 3g/(2l)·sin θ + 3/(ml²)·u, dt = 0.05, |u| ≤ 2, |θ̇| ≤ 8,
/// reward = −(angle(θ)² + 0.1·θ̇² + 0.001·u²), observation [cos θ, sin θ, θ̇], 200 steps per episode.
public final class Pendulum: Environment {
    public static let maxSpeed: Float = 8
    public static let maxTorque: Float = 2
    static let timeStep: Float = 0.05
    static let gravity: Float = 10
    static let mass: Float = 1
    static let length: Float = 1

    public private(set) var angle: Float = 0
    public private(set) var angularVelocity: Float = 0

    public init() {}

    public var observationDim: Int { 3 }
    public var actionDim: Int { 1 }
    public var maxEpisodeSteps: Int { 200 }
    public var observationLow: [Float] { [-1, -1, -Pendulum.maxSpeed] }
    public var observationHigh: [Float] { [1, 1, Pendulum.maxSpeed] }
    public var actionLow: [Float] { [-Pendulum.maxTorque] }
    public var actionHigh: [Float] { [Pendulum.maxTorque] }

    public func reset(random: inout Philox, observation: UnsafeMutablePointer<Float>) {
        angle = (random.uniform() * 2 - 1) * Float.pi
        angularVelocity = random.uniform() * 2 - 1
        write(observation)
    }

    /// Sets the state directly (tests and scripted demonstrations).
    public func setState(angle: Float, angularVelocity: Float, observation: UnsafeMutablePointer<Float>) {
        self.angle = angle
        self.angularVelocity = angularVelocity
        write(observation)
    }

    public func step(action: UnsafePointer<Float>, observation: UnsafeMutablePointer<Float>) -> (reward: Float, terminated: Bool) {
        let torque = min(max(action[0], -Pendulum.maxTorque), Pendulum.maxTorque)
        let wrapped = Pendulum.normalizeAngle(angle)
        let cost = wrapped * wrapped + 0.1 * angularVelocity * angularVelocity + 0.001 * torque * torque
        let g = Pendulum.gravity, m = Pendulum.mass, l = Pendulum.length, dt = Pendulum.timeStep
        var velocity = angularVelocity + (3 * g / (2 * l) * sinf(angle) + 3 / (m * l * l) * torque) * dt
        velocity = min(max(velocity, -Pendulum.maxSpeed), Pendulum.maxSpeed)
        angle += velocity * dt
        angularVelocity = velocity
        write(observation)
        return (-cost, false)
    }

    private func write(_ observation: UnsafeMutablePointer<Float>) {
        observation[0] = cosf(angle)
        observation[1] = sinf(angle)
        observation[2] = angularVelocity
    }

    /// Angle wrapped to [−π, π).
    public static func normalizeAngle(_ x: Float) -> Float {
        let twoPi = 2 * Float.pi
        var wrapped = (x + Float.pi).truncatingRemainder(dividingBy: twoPi)
        if wrapped < 0 { wrapped += twoPi }
        return wrapped - Float.pi
    }

    /// A scripted swing-up controller (energy pumping far from upright, PD near it), used to
    /// make demonstrations. `gain` scales its torque: below 1 it is deliberately weak and slow.
    public static func scriptedTorque(observation: UnsafePointer<Float>, gain: Float) -> Float {
        let theta = atan2f(observation[1], observation[0])
        let velocity = observation[2]
        let torque: Float
        if cosf(theta) > 0.85 {
            torque = -(10 * theta + 2 * velocity)
        } else {
            // Mechanical energy with I = ml²/3: E = ½Iθ̇² + mg(l/2)cos θ, which is 5 upright.
            // Torque along θ̇ adds energy, against it removes energy.
            let energy = velocity * velocity / 6 + 5 * cosf(theta)
            torque = 2 * (5 - energy) * (velocity >= 0 ? 1 : -1)
        }
        return min(max(torque * gain, -maxTorque), maxTorque)
    }
}
