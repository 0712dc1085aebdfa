/// MJCF models of the planar locomotion tasks, written for this project from the published model parameters of
/// Gymnasium's Hopper, Walker2d and HalfCheetah (v4/v5): link lengths and radii, joint ranges, gears, armature,
/// damping, stiffness, friction, contact parameters, integrator and time step. Everything that only affects
/// rendering (textures, materials, lights, cameras) is left out. Bodies are placed at their joints, in local
/// coordinates; `LocomotionTests` and `GymnasiumParityTests` check that the compiled models match Gymnasium's.
enum LocomotionModels {
    /// One-legged hopper: torso, thigh, leg and foot capsules; three hinge motors with gear 200.
    static let hopper = """
    <mujoco model="hopper">
      <compiler angle="degree" inertiafromgeom="true"/>
      <option integrator="RK4" timestep="0.002"/>
      <default>
        <joint armature="1" damping="1" limited="true"/>
        <geom contype="1" conaffinity="1" condim="1" margin="0.001" solimp=".8 .8 .01" solref=".02 1"/>
      </default>
      <worldbody>
        <geom name="floor" type="plane" size="20 20 .125" condim="3" conaffinity="1"/>
        <body name="torso" pos="0 0 1.25">
          <joint name="rootx" type="slide" axis="1 0 0" limited="false" armature="0" damping="0"/>
          <joint name="rootz" type="slide" axis="0 0 1" limited="false" armature="0" damping="0" ref="1.25"/>
          <joint name="rooty" type="hinge" axis="0 1 0" limited="false" armature="0" damping="0"/>
          <geom name="torso_geom" type="capsule" fromto="0 0 0.2 0 0 -0.2" size="0.05" friction="0.9"/>
    \(leg("", foot: "-0.13 0 0 0.26 0 0", footFriction: 2.0))
        </body>
      </worldbody>
      <actuator>
        <motor joint="thigh_joint" gear="200" ctrllimited="true" ctrlrange="-1 1"/>
        <motor joint="leg_joint" gear="200" ctrllimited="true" ctrlrange="-1 1"/>
        <motor joint="foot_joint" gear="200" ctrllimited="true" ctrlrange="-1 1"/>
      </actuator>
    </mujoco>
    """

    /// Two-legged walker: the hopper's torso with two thigh–leg–foot chains and six motors with gear 100.
    /// `rightFootFriction` is 0.9 in the v4 model and 1.9 (as the left foot) in v5.
    static func walker2d(rightFootFriction: Double) -> String {
        let motors = ["thigh", "leg", "foot", "thigh_left", "leg_left", "foot_left"]
            .map { "    <motor joint=\"\($0)_joint\" gear=\"100\" ctrllimited=\"true\" ctrlrange=\"-1 1\"/>" }.joined(separator: "\n")
        return """
        <mujoco model="walker2d">
          <compiler angle="degree" inertiafromgeom="true"/>
          <option integrator="RK4" timestep="0.002"/>
          <default>
            <joint armature="0.01" damping="0.1" limited="true"/>
            <geom contype="1" conaffinity="0" condim="3" density="1000" friction=".7 .1 .1"/>
          </default>
          <worldbody>
            <geom name="floor" type="plane" size="40 40 40" condim="3" conaffinity="1"/>
            <body name="torso" pos="0 0 1.25">
              <joint name="rootx" type="slide" axis="1 0 0" limited="false" armature="0" damping="0"/>
              <joint name="rootz" type="slide" axis="0 0 1" limited="false" armature="0" damping="0" ref="1.25"/>
              <joint name="rooty" type="hinge" axis="0 1 0" limited="false" armature="0" damping="0"/>
              <geom name="torso_geom" type="capsule" fromto="0 0 0.2 0 0 -0.2" size="0.05" friction="0.9"/>
        \(leg("", foot: "0 0 0 0.2 0 0", footFriction: rightFootFriction))
        \(leg("_left", foot: "0 0 0 0.2 0 0", footFriction: 1.9))
            </body>
          </worldbody>
          <actuator>
        \(motors)
          </actuator>
        </mujoco>
        """
    }

    /// A thigh–leg–foot chain hanging from the torso (Hopper's only leg, each of Walker2d's two): thigh 0.45 and leg 0.5
    /// long (radii 0.05, 0.04, friction 0.9), hinges about −y with ranges −150…0°, −150…0°, ±45°, and a foot capsule of
    /// radius 0.06 from `foot` (its two end points in the foot frame) with `footFriction`.
    static func leg(_ suffix: String, foot: String, footFriction: Double) -> String {
        """
        <body name="thigh\(suffix)" pos="0 0 -0.2">
          <joint name="thigh\(suffix)_joint" type="hinge" axis="0 -1 0" range="-150 0"/>
          <geom name="thigh\(suffix)_geom" type="capsule" fromto="0 0 0 0 0 -0.45" size="0.05" friction="0.9"/>
          <body name="leg\(suffix)" pos="0 0 -0.45">
            <joint name="leg\(suffix)_joint" type="hinge" axis="0 -1 0" range="-150 0"/>
            <geom name="leg\(suffix)_geom" type="capsule" fromto="0 0 0 0 0 -0.5" size="0.04" friction="0.9"/>
            <body name="foot\(suffix)" pos="0 0 -0.5">
              <joint name="foot\(suffix)_joint" type="hinge" axis="0 -1 0" range="-45 45"/>
              <geom name="foot\(suffix)_geom" type="capsule" fromto="\(foot)" size="0.06" friction="\(footFriction)"/>
            </body>
          </body>
        </body>
        """
    }

    /// Planar cheetah: torso with head, back and front thigh–shin–foot chains with joint springs, total mass 14.
    static let halfCheetah = """
    <mujoco model="cheetah">
      <compiler angle="radian" inertiafromgeom="true" settotalmass="14"/>
      <option timestep="0.01" gravity="0 0 -9.81"/>
      <default>
        <joint armature=".1" damping=".01" limited="true" stiffness="8" solimplimit="0 .8 .03" solreflimit=".02 1"/>
        <geom contype="1" conaffinity="0" condim="3" friction=".4 .1 .1" solimp="0.0 0.8 0.01" solref="0.02 1"/>
        <motor ctrllimited="true" ctrlrange="-1 1"/>
      </default>
      <worldbody>
        <geom name="floor" type="plane" size="40 40 40" condim="3" conaffinity="1"/>
        <body name="torso" pos="0 0 .7">
          <joint name="rootx" type="slide" axis="1 0 0" limited="false" armature="0" damping="0" stiffness="0"/>
          <joint name="rootz" type="slide" axis="0 0 1" limited="false" armature="0" damping="0" stiffness="0"/>
          <joint name="rooty" type="hinge" axis="0 1 0" limited="false" armature="0" damping="0" stiffness="0"/>
          <geom name="torso" type="capsule" fromto="-.5 0 0 .5 0 0" size="0.046"/>
          <geom name="head" type="capsule" pos=".6 0 .1" axisangle="0 1 0 .87" size="0.046 .15"/>
          <body name="bthigh" pos="-.5 0 0">
            <joint name="bthigh" type="hinge" axis="0 1 0" range="-.52 1.05" stiffness="240" damping="6"/>
            <geom name="bthigh" type="capsule" pos=".1 0 -.13" axisangle="0 1 0 -3.8" size="0.046 .145"/>
            <body name="bshin" pos=".16 0 -.25">
              <joint name="bshin" type="hinge" axis="0 1 0" range="-.785 .785" stiffness="180" damping="4.5"/>
              <geom name="bshin" type="capsule" pos="-.14 0 -.07" axisangle="0 1 0 -2.03" size="0.046 .15"/>
              <body name="bfoot" pos="-.28 0 -.14">
                <joint name="bfoot" type="hinge" axis="0 1 0" range="-.4 .785" stiffness="120" damping="3"/>
                <geom name="bfoot" type="capsule" pos=".03 0 -.097" axisangle="0 1 0 -.27" size="0.046 .094"/>
              </body>
            </body>
          </body>
          <body name="fthigh" pos=".5 0 0">
            <joint name="fthigh" type="hinge" axis="0 1 0" range="-1 .7" stiffness="180" damping="4.5"/>
            <geom name="fthigh" type="capsule" pos="-.07 0 -.12" axisangle="0 1 0 .52" size="0.046 .133"/>
            <body name="fshin" pos="-.14 0 -.24">
              <joint name="fshin" type="hinge" axis="0 1 0" range="-1.2 .87" stiffness="120" damping="3"/>
              <geom name="fshin" type="capsule" pos=".065 0 -.09" axisangle="0 1 0 -.6" size="0.046 .106"/>
              <body name="ffoot" pos=".13 0 -.18">
                <joint name="ffoot" type="hinge" axis="0 1 0" range="-.5 .5" stiffness="60" damping="1.5"/>
                <geom name="ffoot" type="capsule" pos=".045 0 -.07" axisangle="0 1 0 -.6" size="0.046 .07"/>
              </body>
            </body>
          </body>
        </body>
      </worldbody>
      <actuator>
        <motor name="bthigh" joint="bthigh" gear="120"/>
        <motor name="bshin" joint="bshin" gear="90"/>
        <motor name="bfoot" joint="bfoot" gear="60"/>
        <motor name="fthigh" joint="fthigh" gear="120"/>
        <motor name="fshin" joint="fshin" gear="60"/>
        <motor name="ffoot" joint="ffoot" gear="30"/>
      </actuator>
    </mujoco>
    """
}
