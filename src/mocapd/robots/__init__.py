"""mocapd.robots: the Unitree G1 target.

Public modules (imported explicitly, so ``import mocapd.robots`` stays free of MuJoCo):

* `mocapd.robots.g1`: the project's G1 description (29/23-DOF rev 1.0) and its mesh-free MJCF;
* `mocapd.robots.retarget`: ``retarget_to_g1(motion, contacts, *, mocap_type, variant) -> RobotMotion``;
* `mocapd.robots.motion`: ``RobotMotion``;
* `mocapd.robots.kinematics`: ``forward_kinematics`` of a robot trajectory (links, soles, self-contacts);
* `mocapd.robots.quality`: the quality figures.
"""

__all__: list[str] = []
