import CMuJoCo
import Foundation

/// A compiled MuJoCo model (`mjModel`), shared read-only by every instance of a task; each instance owns its `mjData`.
public final class MuJoCoModel: @unchecked Sendable {
    // @unchecked: the pointer is set once; MuJoCo only reads a model while stepping, and the one writer (the tabletop
    // task, which resizes its cube) writes to its own copy, never to a shared model.
    public let pointer: UnsafeMutablePointer<mjModel>

    /// MuJoCo's warnings (an unstable simulation it reset, a full contact buffer) go to standard error as one line
    /// each, instead of to a MUJOCO_LOG.TXT in the working directory. Installed once, before the first model.
    /// (A static let: Swift runs its initialiser once, thread-safely.)
    private static let warningsToStandardError: Void = dppo_mj_send_warnings_to_stderr()

    /// Compiles an MJCF document held in memory.
    public init(xml: String) throws {
        MuJoCoModel.warningsToStandardError
        var error = [CChar](repeating: 0, count: 1024)
        guard let model = dppo_mj_load_xml_string(xml, &error, Int32(error.count)) else {
            throw EnvironmentError("MuJoCo could not compile the model: \(String(cString: error))")
        }
        pointer = model
    }

    /// Compiles an MJCF file (for example Gymnasium's own `hopper.xml`).
    public init(path: String) throws {
        MuJoCoModel.warningsToStandardError
        guard FileManager.default.fileExists(atPath: path) else { throw EnvironmentError("MuJoCo model file \(path) does not exist") }
        var error = [CChar](repeating: 0, count: 1024)
        guard let model = mj_loadXML(path, nil, &error, Int32(error.count)) else {
            throw EnvironmentError("MuJoCo could not compile \(path): \(String(cString: error))")
        }
        pointer = model
    }

    /// A private copy of `model`, for an instance that changes model parameters (a tabletop cube's size and mass).
    public init(copying model: MuJoCoModel) throws {
        guard let copy = mj_copyModel(nil, model.pointer) else { throw EnvironmentError("MuJoCo could not copy the model") }
        pointer = copy
    }

    deinit { mj_deleteModel(pointer) }

    /// The id of a named element (`mjOBJ_BODY`, `mjOBJ_JOINT`, …), or an error naming it.
    func id(_ type: mjtObj, _ name: String) throws -> Int {
        let id = Int(mj_name2id(pointer, Int32(type.rawValue), name))
        guard id >= 0 else { throw EnvironmentError("the MuJoCo model has no element named \(name)") }
        return id
    }

    public var positionCount: Int { Int(pointer.pointee.nq) }
    public var velocityCount: Int { Int(pointer.pointee.nv) }
    public var actuatorCount: Int { Int(pointer.pointee.nu) }
    public var timeStep: Double { pointer.pointee.opt.timestep }

    /// Actuator control ranges (`ctrlrange`), one (low, high) pair per actuator.
    public var controlRanges: [(low: Double, high: Double)] {
        (0..<actuatorCount).map { (pointer.pointee.actuator_ctrlrange![2 * $0], pointer.pointee.actuator_ctrlrange![2 * $0 + 1]) }
    }

    /// The physical parameters of the compiled model by MuJoCo field name, none of which depends on where body frames
    /// are placed: sizes, time step, integrator, gravity, body masses and principal inertias, joint types, ranges, limits,
    /// stiffness, armature and damping, contact parameters of joints and geoms, gears and control ranges.
    /// Two MJCF files that describe the same robot compile to equal summaries.
    public var physicalSummary: [String: [Double]] {
        let m = pointer.pointee
        func values<T: BinaryFloatingPoint>(_ base: UnsafeMutablePointer<T>?, _ count: Int32, _ width: Int = 1) -> [Double] {
            (0..<Int(count) * width).map { Double(base![$0]) }
        }
        func integers(_ base: UnsafeMutablePointer<Int32>?, _ count: Int32) -> [Double] { (0..<Int(count)).map { Double(base![$0]) } }
        return [
            "nq/nv/nu/nbody/ngeom": [Double(m.nq), Double(m.nv), Double(m.nu), Double(m.nbody), Double(m.ngeom)],
            "opt.timestep": [m.opt.timestep], "opt.integrator": [Double(m.opt.integrator)], "opt.gravity": [m.opt.gravity.0, m.opt.gravity.1, m.opt.gravity.2],
            "body_mass": values(m.body_mass, m.nbody), "body_inertia": values(m.body_inertia, m.nbody, 3),
            "jnt_type": integers(m.jnt_type, m.njnt), "jnt_range": values(m.jnt_range, m.njnt, 2), "jnt_limited": (0..<Int(m.njnt)).map { Double(m.jnt_limited![$0]) },
            "jnt_stiffness": values(m.jnt_stiffness, m.njnt), "qpos0": values(m.qpos0, m.nq),
            "dof_armature": values(m.dof_armature, m.nv), "dof_damping": values(m.dof_damping, m.nv),
            "jnt_solref": values(m.jnt_solref, m.njnt, 2), "jnt_solimp": values(m.jnt_solimp, m.njnt, 5),
            "geom_type": integers(m.geom_type, m.ngeom), "geom_size": values(m.geom_size, m.ngeom, 3), "geom_friction": values(m.geom_friction, m.ngeom, 3),
            "geom_condim": integers(m.geom_condim, m.ngeom), "geom_contype": integers(m.geom_contype, m.ngeom),
            "geom_conaffinity": integers(m.geom_conaffinity, m.ngeom), "geom_margin": values(m.geom_margin, m.ngeom),
            "geom_solref": values(m.geom_solref, m.ngeom, 2), "geom_solimp": values(m.geom_solimp, m.ngeom, 5),
            "actuator_gear": values(m.actuator_gear, m.nu, 6), "actuator_ctrlrange": values(m.actuator_ctrlrange, m.nu, 2),
        ]
    }

    /// The linked library's version, e.g. "2.2.2".
    public static var libraryVersion: String { String(cString: mj_versionString()) }
}

/// One simulation state (`mjData`) of a model.
package final class MuJoCoData {
    let model: MuJoCoModel
    package let pointer: UnsafeMutablePointer<mjData>

    package init(model: MuJoCoModel) throws {
        guard let data = mj_makeData(model.pointer) else { throw EnvironmentError("MuJoCo could not allocate simulation data") }
        self.model = model
        pointer = data
    }

    deinit { mj_deleteData(pointer) }

    var qpos: UnsafeMutablePointer<mjtNum> { pointer.pointee.qpos! }
    var qvel: UnsafeMutablePointer<mjtNum> { pointer.pointee.qvel! }
    var ctrl: UnsafeMutablePointer<mjtNum> { pointer.pointee.ctrl! }

    func reset() { mj_resetData(model.pointer, pointer) }
    func forward() { mj_forward(model.pointer, pointer) }
    func step() { mj_step(model.pointer, pointer) }
}
