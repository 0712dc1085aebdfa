import Foundation

/// AdamW (decoupled weight decay, PyTorch semantics) over one flat `Parameters` buffer,
/// with optional gradient-norm clipping.
public final class Adam {
    public let parameters: Parameters
    public var learningRate: Float
    public var beta1: Float
    public var beta2: Float
    public var epsilon: Float
    public var weightDecay: Float
    public var maxGradientNorm: Float?
    public private(set) var step: Int = 0
    public let firstMoment: UnsafeMutablePointer<Float>
    public let secondMoment: UnsafeMutablePointer<Float>

    public init(parameters: Parameters, learningRate: Float, beta1: Float = 0.9, beta2: Float = 0.999,
                epsilon: Float = 1e-8, weightDecay: Float = 0, maxGradientNorm: Float? = nil) {
        self.parameters = parameters
        self.learningRate = learningRate
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
        self.weightDecay = weightDecay
        self.maxGradientNorm = maxGradientNorm
        let count = max(parameters.count, 1)
        firstMoment = .allocate(capacity: count)
        firstMoment.initialize(repeating: 0, count: count)
        secondMoment = .allocate(capacity: count)
        secondMoment.initialize(repeating: 0, count: count)
    }

    deinit {
        firstMoment.deallocate()
        secondMoment.deallocate()
    }

    /// One update from the accumulated gradients. Returns the gradient norm before clipping.
    @discardableResult
    public func update() -> Double {
        let norm = parameters.gradientNorm()
        var gradientScale: Float = 1
        if let maxNorm = maxGradientNorm, norm > Double(maxNorm) {
            gradientScale = Float(Double(maxNorm) / (norm + 1e-6))
        }
        step += 1
        let correction1 = 1 - powf(beta1, Float(step))
        let correction2 = 1 - powf(beta2, Float(step))
        let stepSize = learningRate / correction1
        let decay = 1 - learningRate * weightDecay
        let values = parameters.values, gradients = parameters.gradients
        let m = firstMoment, v = secondMoment
        let b1 = beta1, b2 = beta2, eps = epsilon
        let inverseRootCorrection2 = 1 / correction2.squareRoot()
        for index in 0..<parameters.count {
            let gradient = gradients[index] * gradientScale
            m[index] = b1 * m[index] + (1 - b1) * gradient
            v[index] = b2 * v[index] + (1 - b2) * gradient * gradient
            let denominator = v[index].squareRoot() * inverseRootCorrection2 + eps
            values[index] = values[index] * decay - stepSize * m[index] / denominator
        }
        return norm
    }

    /// Restores a state that `state()` returned (resuming from a checkpoint).
    public func restore(step: Int, firstMoment m: [Float], secondMoment v: [Float]) {
        precondition(step >= 0 && m.count == parameters.count && v.count == parameters.count, "optimizer state does not fit \(parameters.count) parameters")
        self.step = step
        m.withUnsafeBufferPointer { firstMoment.update(from: $0.baseAddress!, count: parameters.count) }
        v.withUnsafeBufferPointer { secondMoment.update(from: $0.baseAddress!, count: parameters.count) }
    }

    /// Optimizer state for checkpoints: (step, m, v).
    public func state() -> (step: Int, firstMoment: [Float], secondMoment: [Float]) {
        (step, Array(UnsafeBufferPointer(start: firstMoment, count: parameters.count)),
         Array(UnsafeBufferPointer(start: secondMoment, count: parameters.count)))
    }
}

/// CosineAnnealingWarmupRestarts with γ = 1 and cycle_mult = 1 (docs/algorithms.md §4.9).
/// `s` counts scheduler steps (0 right after construction, so lr(0) = min).
public struct CosineWarmupSchedule: Sendable, Codable, Equatable {
    public var maxLearningRate: Double
    public var minLearningRate: Double
    public var firstCycleSteps: Int
    public var warmupSteps: Int

    public init(maxLearningRate: Double, minLearningRate: Double, firstCycleSteps: Int, warmupSteps: Int) {
        precondition(firstCycleSteps > 0 && warmupSteps >= 0 && warmupSteps < firstCycleSteps, "invalid schedule lengths")
        self.maxLearningRate = maxLearningRate
        self.minLearningRate = minLearningRate
        self.firstCycleSteps = firstCycleSteps
        self.warmupSteps = warmupSteps
    }

    public func learningRate(step: Int) -> Double {
        let position = step % firstCycleSteps
        let span = maxLearningRate - minLearningRate
        if position < warmupSteps {
            return minLearningRate + span * Double(position) / Double(warmupSteps)
        }
        let progress = Double(position - warmupSteps) / Double(firstCycleSteps - warmupSteps)
        return minLearningRate + span * (1 + cos(Double.pi * progress)) / 2
    }
}
