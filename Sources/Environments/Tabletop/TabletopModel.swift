/// The MJCF scene of the tabletop tasks, written for this project (it is not robomimic's Panda scene): a table
/// plane, one cube on a free joint, and a gripper of a palm and two parallel fingers. The gripper moves on three
/// slide joints (x, y, z), each driven by a position servo, so it is commanded in Cartesian space; each finger
/// slides along y under its own position servo with a bounded force. The servos are critically damped by joint
/// damping (c = 2√(kp·m)). A hinge about z (yaw) under a position servo turns the palm and fingers, so a grasp
/// can close along x or along y. Collision groups keep the gripper's geoms from touching each other: gripper geoms
/// have contype 2 and conaffinity 1, the table and the cube contype and conaffinity 1.
///
/// Frames: the table top is z = 0. The gripper body's origin is at the fingertips' lower edge, between the
/// fingers; its "grip" point, the end-effector position the observation reports, is 2 cm above it. A finger's
/// joint value q is the distance of its inner face from the gripper's centre plane, so the opening is 2q.
/// The elliptic friction cone with impratio 10 keeps a squeezed cube from slipping, as in MuJoCo's grasping
/// examples. The cube's size, mass and inertia are set per episode on each instance's own copy of the model.
package enum TabletopModel {
    /// Physics step (s) and physics steps per control step: 2 ms × 25 = 50 ms, 20 Hz control.
    static let timeStep = 0.002
    package static let substeps = 25
    /// Finger travel: fully open, each inner face 2.8 cm from the centre plane. A cube is 4 to 4.8 cm across its
    /// faces and 5.7 to 6.8 cm across its diagonal: the fingers pass around it only when turned to its faces.
    static let fingerOpen = 0.028
    /// The grip point above the gripper's origin (the fingertips' lower edge).
    static let gripOffset = 0.02
    /// Workspace of the gripper origin (the servos' control ranges and the joints' limits).
    static let workspaceX = (-0.2, 0.2), workspaceY = (-0.2, 0.2), workspaceZ = (0.0, 0.3)
    /// The gripper's yaw range (rad).
    static let yawRange = (-2.0, 2.0)
    static let cubeDensity = 500.0

    static let xml = """
    <mujoco model="tabletop">
      <compiler angle="radian" inertiafromgeom="true"/>
      <option timestep="\(timeStep)" integrator="Euler" cone="elliptic" impratio="10"/>
      <default>
        <geom condim="4" friction="1 0.005 0.0001" solref="0.005 1" solimp="0.95 0.99 0.001" contype="1" conaffinity="1"/>
        <default class="gripper">
          <geom contype="2" conaffinity="1"/>
        </default>
      </default>
      <worldbody>
        <geom name="table" type="plane" size="0.5 0.5 0.05"/>
        <site name="target" type="cylinder" size="0.025 0.001" pos="0.08 0 0.001" rgba="0 1 0 0.3"/>
        <body name="cube" pos="0 0 0.02">
          <freejoint name="cube"/>
          <geom name="cube" type="box" size="0.02 0.02 0.02" density="\(cubeDensity)"/>
        </body>
        <body name="gripper" pos="0 0 0" childclass="gripper">
          <joint name="gripper_x" type="slide" axis="1 0 0" limited="true" range="\(workspaceX.0) \(workspaceX.1)" damping="50"/>
          <joint name="gripper_y" type="slide" axis="0 1 0" limited="true" range="\(workspaceY.0) \(workspaceY.1)" damping="50"/>
          <joint name="gripper_z" type="slide" axis="0 0 1" limited="true" range="\(workspaceZ.0) \(workspaceZ.1)" damping="50"/>
          <joint name="gripper_yaw" type="hinge" axis="0 0 1" limited="true" range="\(yawRange.0) \(yawRange.1)" damping="0.18" armature="0.001"/>
          <geom name="palm" type="box" size="0.012 0.058 0.008" pos="0 0 0.078" mass="0.3"/>
          <site name="grip" pos="0 0 \(gripOffset)" size="0.004"/>
          <body name="finger_left">
            <joint name="finger_left" type="slide" axis="0 1 0" limited="true" range="0 \(fingerOpen)" damping="4"/>
            <geom name="finger_left" type="box" size="0.01 0.005 0.035" pos="0 0.005 0.035" mass="0.05"/>
          </body>
          <body name="finger_right">
            <joint name="finger_right" type="slide" axis="0 -1 0" limited="true" range="0 \(fingerOpen)" damping="4"/>
            <geom name="finger_right" type="box" size="0.01 0.005 0.035" pos="0 -0.005 0.035" mass="0.05"/>
          </body>
        </body>
      </worldbody>
      <actuator>
        <position name="gripper_x" joint="gripper_x" kp="1500" ctrllimited="true" ctrlrange="\(workspaceX.0) \(workspaceX.1)"/>
        <position name="gripper_y" joint="gripper_y" kp="1500" ctrllimited="true" ctrlrange="\(workspaceY.0) \(workspaceY.1)"/>
        <position name="gripper_z" joint="gripper_z" kp="1500" ctrllimited="true" ctrlrange="\(workspaceZ.0) \(workspaceZ.1)"/>
        <position name="gripper_yaw" joint="gripper_yaw" kp="5" ctrllimited="true" ctrlrange="\(yawRange.0) \(yawRange.1)"/>
        <position name="finger_left" joint="finger_left" kp="100" ctrllimited="true" ctrlrange="0 \(fingerOpen)"
                  forcelimited="true" forcerange="-10 10"/>
        <position name="finger_right" joint="finger_right" kp="100" ctrllimited="true" ctrlrange="0 \(fingerOpen)"
                  forcelimited="true" forcerange="-10 10"/>
      </actuator>
    </mujoco>
    """
}
