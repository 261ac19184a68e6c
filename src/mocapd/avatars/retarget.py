"""Retargeting a solved motion of the default skeleton onto a prepared avatar.

Everything happens in mocapd's frame (Z up, metres, facing -Y; `Rig.to_norm` takes the avatar there),
so the avatar's units, up axis, facing and bone axes do not matter:

* **Rotations.** The default skeleton's rest orientations are the identity, so a joint's world
  rotation ``G_j(t)`` is its turn away from the T-pose. A mapped avatar bone gets the world rotation
  ``G_j(t) · D_b · M_b``, where ``M_b`` is the bone's own rest orientation (any local axes, any scale)
  and ``D_b`` the rest-pose alignment: for arms and legs, the shortest arc turning the avatar's rest
  bone direction (to the next mapped joint) onto the default skeleton's (an A-pose arm is raised to
  the T-pose first, its twist kept); for the feet, the turn about the vertical that points the toes
  the same way; the identity for pelvis, spine, neck and head (the avatar's own posture is kept).
  Hands and toes take their parent limb's alignment.
* **Positions.** Bone lengths are the avatar's own: positions follow from its hierarchy. The pelvis
  is placed at the source pelvis scaled by the ratio of leg lengths (hip to ankle), so strides fit
  the avatar. A mapped bone that hangs elsewhere in the avatar's tree than its default parent (an IK
  foot bone under the root) follows that parent's bone rigidly.
* **Reach.** Where the avatar's proportions differ from the source's, copied rotations put its hands
  elsewhere than the source's, size for size. Each arm then turns (upper arm, forearm: an analytic
  two-bone IK, lengths kept) so the hand reaches for the source's hand relative to the pelvis,
  scaled by the avatar's height over the source's stature, the elbow kept in its bending plane
  (backwards when the arm is straight). Neither bone may turn more than `MAX_REACH_TURN_DEG` from
  the source bone's direction: each frame goes the largest fraction of the way that allows (a
  bisection), so an out-of-reach hand gets as close as the limit lets it, without a jump. The legs
  do not reach: their ends are held by the feet rules below.
* **Unmapped bones** (twist, helper, hair bones, and finger bones when the motion has no finger
  data) keep their rest transform relative to their parent.
* **Feet.** With the pipeline's foot contacts, each foot in contact touches the ground at one
  point: the ankle while its heel is down, the ball of the foot while it stands on its toes (a rig
  without a ball bone: the ankle plus the source's ankle-to-ball vector, scaled, the ankle never
  below its rest height). The root is moved vertically so that a foot in contact has that point at
  its rest-pose height (the sole on z = 0; with both feet down their mean, but never higher than
  lets each leg reach its point), interpolated between contacts; the horizontal drift of the points
  in contact is taken off the root (the avatar's stride is its own); then each point is pinned: the
  longest heel-down part of a contact at the mean of its positions, the parts before and after it
  where that left the point (so the ball stays where the flat foot put it), with the leg's two-bone
  IK (thigh, calf; knee kept in its bending plane, forwards when straight; neither bone more than
  `MAX_PIN_TURN_DEG` from the source's direction), blended in and out over a few frames.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from mocapd.avatars.rig import Rig
from mocapd.pipeline.contacts import FootContacts
from mocapd.pipeline.runs import true_runs
from mocapd.pipeline.skeleton import Motion

__all__ = ["AvatarAnimation", "retarget_to_avatar"]

FloatArray = NDArray[np.float64]

_LIMB_NEXT = {
    "clavicle_l": "upperarm_l", "upperarm_l": "lowerarm_l", "lowerarm_l": "hand_l",
    "clavicle_r": "upperarm_r", "upperarm_r": "lowerarm_r", "lowerarm_r": "hand_r",
    "thigh_l": "calf_l", "calf_l": "foot_l", "thigh_r": "calf_r", "calf_r": "foot_r",
}  # fmt: skip
_INHERIT = {"hand_l": "lowerarm_l", "hand_r": "lowerarm_r", "ball_l": "foot_l", "ball_r": "foot_r"}
# fingers (SPEC 16): each segment aligned onto the next joint, the tip segment as the one before
for _s in ("l", "r"):
    for _f in ("thumb", "index", "middle", "ring", "pinky"):
        _LIMB_NEXT[f"{_f}_01_{_s}"] = f"{_f}_02_{_s}"
        _LIMB_NEXT[f"{_f}_02_{_s}"] = f"{_f}_03_{_s}"
        _INHERIT[f"{_f}_03_{_s}"] = f"{_f}_02_{_s}"
_BLEND_FRAMES = 4
# Each arm reaches for the source's hand (see `_reach`): upper bone, lower bone, end joint, and the
# way the elbow goes when a straight arm bends (backwards), in the source chest's frame.
_REACH = (("upperarm_l", "lowerarm_l", "hand_l", (0.0, 1.0, 0.0)), ("upperarm_r", "lowerarm_r", "hand_r", (0.0, 1.0, 0.0)))
MAX_REACH_TURN_DEG = 15.0  # the most reaching may turn an arm bone away from the source bone's direction
MAX_PIN_TURN_DEG = 18.0  # the most pinning a foot may turn a leg bone away from the source bone's direction
_REACH_STEPS = 8


@dataclass(frozen=True)
class AvatarAnimation:
    """The avatar's bones animated: local transforms in the file frame, world ones in mocapd's."""

    rig: Rig
    fps: float
    local: FloatArray  # (F, B, 4, 4) relative to the parent bone (roots: to rig.root_parent), file frame
    world_norm: FloatArray  # (F, B, 4, 4) mocapd frame

    @property
    def num_frames(self) -> int:
        return int(self.local.shape[0])


def _quat_matrix(q: FloatArray) -> FloatArray:
    w, x, y, z = np.moveaxis(q / np.linalg.norm(q, axis=-1, keepdims=True), -1, 0)
    return np.stack(
        [
            np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], axis=-1),
            np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], axis=-1),
            np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], axis=-1),
        ],
        axis=-2,
    )


def arc(a: FloatArray, b: FloatArray) -> FloatArray:
    """Rotation matrices (..., 3, 3) turning directions ``a`` onto ``b`` by the shortest arc."""
    a = a / np.maximum(np.linalg.norm(a, axis=-1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=-1, keepdims=True), 1e-12)
    c = np.sum(a * b, axis=-1)
    v = np.cross(a, b)
    # antiparallel: turn by pi about any axis perpendicular to a
    perp = np.cross(a, np.where(np.abs(a[..., :1]) < 0.9, [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]))
    q = np.concatenate([(1.0 + c)[..., None], v], axis=-1)
    flip = (1.0 + c) < 1e-9
    q = np.where(flip[..., None], np.concatenate([np.zeros_like(c)[..., None], perp], axis=-1), q)
    return _quat_matrix(q)


def _yaw_arc(a: FloatArray, b: FloatArray) -> FloatArray:
    a2 = np.array([a[0], a[1], 0.0])
    b2 = np.array([b[0], b[1], 0.0])
    if np.linalg.norm(a2) < 1e-9 or np.linalg.norm(b2) < 1e-9:
        return np.eye(3)
    return arc(a2, b2)


class _Solver:
    def __init__(self, motion: Motion, rig: Rig, mapping: dict[str, str]) -> None:
        self.rig = rig
        self.motion = motion
        index = {n: b for b, n in enumerate(rig.names)}
        self.bone = {k: index[v] for k, v in mapping.items() if v in index}
        self.joint = {k: motion.skeleton.index(k) for k in self.bone}
        self.to_norm = rig.to_norm
        self.local_rest = rig.rest_local  # (B, 4, 4) file frame
        self.top = rig.to_norm @ rig.root_parent  # (4, 4) roots' parent in mocapd's frame
        self.rest = self.top @ _compose(rig.parents, rig.rest_local)  # (B, 4, 4) mocapd frame
        pos, q = motion.world_transforms()
        self.src_pos = pos  # (F, J, 3)
        self.src_rot = _quat_matrix(q)  # (F, J, 3, 3)
        self.align = self._alignments()
        self.attach: dict[int, tuple[int, FloatArray]] = {}
        for k, b in self.bone.items():
            p = _mapped_parent(k, self.bone)
            if p is not None and not rig.is_ancestor(self.bone[p], b):
                pb = self.bone[p]
                self.attach[b] = (pb, np.linalg.solve(self.rest[pb], self.rest[b][:, 3]))
        self.scale = self._leg_ratio()
        self.order = self._order()

    def _order(self) -> list[int]:
        """Bones parents first, and a bone that follows another (``attach``) after that one."""
        done: list[int] = []
        seen: set[int] = set()
        pending = list(range(self.rig.num_bones))
        while pending:
            rest = []
            for b in pending:
                p = int(self.rig.parents[b])
                a = self.attach.get(b, (-1, None))[0]
                if (p < 0 or p in seen) and (a < 0 or a in seen):
                    done.append(b)
                    seen.add(b)
                else:
                    rest.append(b)
            if len(rest) == len(pending):  # a cycle through attachments: drop them
                self.attach.clear()
                return list(range(self.rig.num_bones))
            pending = rest
        return done

    def _rest_pos(self, key: str) -> FloatArray:
        return self.rest[self.bone[key], :3, 3]

    def _alignments(self) -> dict[str, FloatArray]:
        sk_rest = self.motion.skeleton.rest_positions_m()
        d: dict[str, FloatArray] = {}
        for k in self.bone:
            if k in _LIMB_NEXT:
                nxt = _LIMB_NEXT[k]
                if nxt not in self.bone:
                    continue
                a = self._rest_pos(nxt) - self._rest_pos(k)
                b = sk_rest[self.motion.skeleton.index(nxt)] - sk_rest[self.motion.skeleton.index(k)]
                d[k] = arc(a, b)
            elif k.startswith("foot_"):
                ball = "ball_" + k[-1]
                if ball in self.bone:
                    a = self._rest_pos(ball) - self._rest_pos(k)
                    b = sk_rest[self.motion.skeleton.index(ball)] - sk_rest[self.motion.skeleton.index(k)]
                    d[k] = _yaw_arc(a, b)
        for k, parent in _INHERIT.items():
            if k in self.bone and parent in d:
                d[k] = d[parent]
        for k, nxt in _LIMB_NEXT.items():  # a limb bone whose next joint is unmapped: its parent's turn
            if k in self.bone and k not in d and nxt not in self.bone:
                d[k] = np.eye(3)
        return d

    def _leg_ratio(self) -> float:
        sk = self.motion.skeleton
        ratios = []
        for s in ("l", "r"):
            avatar = np.linalg.norm(self._rest_pos(f"calf_{s}") - self._rest_pos(f"thigh_{s}")) + np.linalg.norm(
                self._rest_pos(f"foot_{s}") - self._rest_pos(f"calf_{s}")
            )
            source = np.linalg.norm(sk.rest_offsets_m[sk.index(f"calf_{s}")]) + np.linalg.norm(
                sk.rest_offsets_m[sk.index(f"foot_{s}")]
            )
            ratios.append(avatar / max(float(source), 1e-9))
        return float(np.mean(ratios))

    def pose(self, pelvis_pos: FloatArray, overrides: dict[int, FloatArray] | None = None) -> FloatArray:
        """World matrices (F, B, 4, 4) in mocapd's frame; ``overrides`` replace mapped bones' 3x3 parts."""
        overrides = overrides or {}
        nf = self.src_pos.shape[0]
        nb = self.rig.num_bones
        world = np.empty((nf, nb, 4, 4))
        by_bone = {b: k for k, b in self.bone.items()}
        pelvis = self.bone["pelvis"]
        for b in self.order:
            p = int(self.rig.parents[b])
            base = (world[:, p] if p >= 0 else self.top[None]) @ self.local_rest[b]  # (F or 1, 4, 4)
            k = by_bone.get(b)
            if k is not None:
                m = np.array(np.broadcast_to(base, (nf, 4, 4)))
                if b in overrides:
                    m[:, :3, :3] = overrides[b]
                else:
                    turn = self.src_rot[:, self.joint[k]] @ self.align.get(k, np.eye(3))  # (F, 3, 3)
                    m[:, :3, :3] = turn @ self.rest[b, :3, :3]
                if b == pelvis:
                    m[:, :3, 3] = pelvis_pos
                elif b in self.attach:
                    a, offset = self.attach[b]
                    m[:, :3, 3] = (world[:, a] @ offset)[:, :3]
                world[:, b] = m
            else:
                world[:, b] = np.broadcast_to(base, (nf, 4, 4))
        return world


def _mapped_parent(key: str, bone: dict[str, int]) -> str | None:
    from mocapd.avatars.mapping import DEFAULT_PARENTS, FINGER_PARENTS

    parents: dict[str, str | None] = {**DEFAULT_PARENTS, **FINGER_PARENTS}
    p = parents[key]
    while p is not None and p not in bone:
        p = parents[p]
    return p


def _compose(parents: NDArray[np.int64], local: FloatArray) -> FloatArray:
    world = np.empty_like(local)
    for b, p in enumerate(parents):
        world[b] = local[b] if p < 0 else world[p] @ local[b]
    return world


def _interpolate(values: FloatArray, known: NDArray[np.bool_]) -> FloatArray:
    idx = np.arange(len(values))
    if not known.any():
        return np.zeros_like(values)
    return np.interp(idx, idx[known], values[known])


def _smooth(x: FloatArray, frames: int) -> FloatArray:
    if frames <= 1 or len(x) < 3:
        return x
    k = np.ones(frames) / frames
    pad = frames // 2
    return np.convolve(np.pad(x, (pad, frames - 1 - pad), mode="edge"), k, mode="valid")


def _bend_to(
    root: FloatArray, mid: FloatArray, end: FloatArray, target: FloatArray, pole: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """New mid and end positions (N, 3) of a two-bone chain (lengths kept) with the end on ``target``,
    or as near as the lengths allow, the mid joint in the plane of its present bend (``pole`` where
    the chain is straight)."""
    a = np.linalg.norm(mid - root, axis=1)
    b = np.linalg.norm(end - mid, axis=1)
    v = target - root
    dist = np.linalg.norm(v, axis=1)
    u = v / np.maximum(dist, 1e-12)[:, None]
    length = np.clip(dist, np.abs(a - b) + 1e-6 * (a + b), (a + b) * (1.0 - 1e-6))
    bend = mid - root
    p = bend - np.sum(bend * u, axis=1, keepdims=True) * u
    pn = np.linalg.norm(p, axis=1)
    q = pole - np.sum(pole * u, axis=1, keepdims=True) * u
    q = q / np.maximum(np.linalg.norm(q, axis=1), 1e-12)[:, None]
    # the present bend where there is one, the pole as the chain straightens (no jump between them)
    w = np.clip(pn / (0.05 * a), 0.0, 1.0)[:, None]
    p = w * p / np.maximum(pn, 1e-12)[:, None] + (1.0 - w) * q
    p = p / np.maximum(np.linalg.norm(p, axis=1), 1e-12)[:, None]
    cos_a = np.clip((a**2 + length**2 - b**2) / (2 * a * length), -1.0, 1.0)
    sin_a = np.sqrt(1.0 - cos_a**2)
    mid_new = root + a[:, None] * (cos_a[:, None] * u + sin_a[:, None] * p)
    return mid_new, root + length[:, None] * u


def _cos_turn(a: FloatArray, b: FloatArray) -> FloatArray:
    cos: FloatArray = np.sum(a * b, axis=1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-24)
    return cos


def _bounded_reach(
    root: FloatArray, mid: FloatArray, end: FloatArray, target: FloatArray, pole: FloatArray, max_turn_rad: float
) -> tuple[FloatArray, FloatArray]:
    """Turns (N, 3, 3) of the upper and the lower bone (world, the lower one after the upper's) that move
    the end towards ``target`` as far as neither bone turns by more than ``max_turn_rad`` from where it
    points now: the largest fraction of the way, found by bisection per frame."""
    cos_max = np.cos(max_turn_rad)
    d1, d2 = mid - root, end - mid

    def attempt(frac: FloatArray) -> tuple[FloatArray, FloatArray, NDArray[np.bool_]]:
        m, e = _bend_to(root, mid, end, end + frac[:, None] * (target - end), pole)
        ok = (_cos_turn(m - root, d1) >= cos_max) & (_cos_turn(e - m, d2) >= cos_max)
        return m, e, ok

    n = len(root)
    lo, hi = np.zeros(n), np.ones(n)
    _, _, full = attempt(hi)
    lo[full] = 1.0
    for _ in range(_REACH_STEPS if not full.all() else 0):
        mid_frac = 0.5 * (lo + hi)
        _, _, ok = attempt(mid_frac)
        ok |= full
        lo = np.where(ok, mid_frac, lo)
        hi = np.where(ok, hi, mid_frac)
    m, e, _ = attempt(lo)
    t1 = arc(d1, m - root)
    t2 = arc(np.einsum("nij,nj->ni", t1, d2), e - m)
    return t1, t2


def _segments(mask: NDArray[np.bool_]) -> list[tuple[int, int]]:
    """Runs of equal values in ``mask``, as (start, end) pairs covering it."""
    cuts = [0, *(np.flatnonzero(np.diff(mask.astype(np.int8))) + 1).tolist(), len(mask)]
    return [(int(a), int(b)) for a, b in zip(cuts[:-1], cuts[1:], strict=True)]


class _ContactPoints:
    """Where each foot touches the ground on each frame: the ankle (the foot bone's head) while the heel
    is down, the ball of the foot while the foot stands on its toes (``toes``, (F, 2)). Without a
    mapped ball bone, the ball is the ankle plus the source's ankle-to-ball vector, scaled."""

    def __init__(self, s: _Solver, toes: NDArray[np.bool_]) -> None:
        self.s = s
        self.toes = toes
        sk = s.motion.skeleton
        src_rest = sk.rest_positions_m()
        self.rest_h: list[float] = []
        self.ball_h: list[float] = []
        self.offset: list[FloatArray | None] = []  # (F, 3) ankle -> ball where the ball is not mapped
        for side in ("l", "r"):
            foot = s.bone[f"foot_{side}"]
            self.rest_h.append(float(s.rest[foot, 2, 3]))
            ball = s.bone.get(f"ball_{side}")
            if ball is not None:
                self.ball_h.append(float(s.rest[ball, 2, 3]))
                self.offset.append(None)
            else:
                fj, bj = sk.index(f"foot_{side}"), sk.index(f"ball_{side}")
                drop = s.scale * float(src_rest[fj, 2] - src_rest[bj, 2])
                self.ball_h.append(self.rest_h[-1] - drop)
                offset = s.scale * (s.src_pos[:, bj] - s.src_pos[:, fj])
                offset[:, 2] = np.minimum(offset[:, 2], -drop)  # on its toes, the ankle never below its rest height
                self.offset.append(offset)

    def _ball(self, world: FloatArray, i: int) -> FloatArray:
        side = "lr"[i]
        offset = self.offset[i]
        if offset is None:
            return world[:, self.s.bone[f"ball_{side}"], :3, 3]
        return world[:, self.s.bone[f"foot_{side}"], :3, 3] + offset

    def joint(self, world: FloatArray, i: int, ball: bool) -> FloatArray:
        """(F, 3) the ball (``ball``) or the ankle of foot ``i`` on every frame."""
        return self._ball(world, i) if ball else world[:, self.s.bone["foot_" + "lr"[i]], :3, 3]

    def of(self, world: FloatArray, i: int, shift: bool = False) -> FloatArray:
        """(F, 3) the contact point of foot ``i``; ``shift``: row t holds frame t - 1's position of the
        point frame t uses (row 0: frame 0's)."""
        ankle = world[:, self.s.bone["foot_" + "lr"[i]], :3, 3]
        ball = self._ball(world, i)
        if shift:
            ankle = np.concatenate([ankle[:1], ankle[:-1]])
            ball = np.concatenate([ball[:1], ball[:-1]])
        return np.where(self.toes[:, i, None], ball, ankle)

    def ground(self, i: int) -> FloatArray:
        """(F,) the rest height of foot ``i``'s contact point on each frame."""
        return np.where(self.toes[:, i], self.ball_h[i], self.rest_h[i])


def _pin_run(correction: FloatArray, point: _ContactPoints, world: FloatArray, i: int, start: int, end: int) -> None:
    """The ankle's correction (F, 3) over one contact of foot ``i`` (frames ``start:end``): the contact
    point on the ground, held still. The longest heel-down part (else the longest part) holds its
    point at the mean of its positions; the parts before and after it hold theirs where it was, once
    corrected, on the frame next to them (heel to toes: the ball stays where the flat foot put it)."""
    toes = point.toes[start:end, i]
    parts = _segments(toes)
    heel = [k for k, (a, _) in enumerate(parts) if not toes[a]]
    anchor = max(heel or range(len(parts)), key=lambda k: parts[k][1] - parts[k][0])
    ground = point.ground(i)

    def pin(k: int, xy: FloatArray) -> None:
        a, b = start + parts[k][0], start + parts[k][1]
        at = point.joint(world, i, bool(toes[parts[k][0]]))[a:b]
        correction[a:b, :2] = xy - at[:, :2]
        correction[a:b, 2] = ground[a:b] - at[:, 2]

    a, b = start + parts[anchor][0], start + parts[anchor][1]
    pin(anchor, point.joint(world, i, bool(toes[parts[anchor][0]]))[a:b, :2].mean(axis=0))
    for k in range(anchor + 1, len(parts)):  # later parts: from the frame before each
        f = start + parts[k][0] - 1
        pin(k, point.joint(world, i, bool(toes[parts[k][0]]))[f, :2] + correction[f, :2])
    for k in range(anchor - 1, -1, -1):  # earlier parts: from the frame after each
        f = start + parts[k][1]
        pin(k, point.joint(world, i, bool(toes[parts[k][0]]))[f, :2] + correction[f, :2])


def _reach(s: _Solver, world: FloatArray, ratio: float) -> dict[int, FloatArray]:
    """World rotations (bone -> (F, 3, 3)) of the upper arm and forearm of each arm, turned so
    the hand reaches for the source's, relative to the pelvis and scaled by ``ratio`` (avatar
    height over source stature), within `MAX_REACH_TURN_DEG` of the source bones' directions."""
    sk = s.motion.skeleton
    src_pelvis = s.src_pos[:, sk.index("pelvis")]  # (F, 3)
    pelvis = world[:, s.bone["pelvis"], :3, 3]
    out: dict[int, FloatArray] = {}
    for up, low, end, pole in _REACH:
        if not (up in s.bone and low in s.bone and end in s.bone):
            continue
        b1, b2, b3 = s.bone[up], s.bone[low], s.bone[end]
        target = pelvis + (s.src_pos[:, sk.index(end)] - src_pelvis) * ratio
        frame = s.src_rot[:, sk.index("spine_03")]  # (F, 3, 3)
        t1, t2 = _bounded_reach(world[:, b1, :3, 3], world[:, b2, :3, 3], world[:, b3, :3, 3], target,
                                frame @ np.array(pole), np.radians(MAX_REACH_TURN_DEG))
        out[b1] = t1 @ world[:, b1, :3, :3]
        out[b2] = t2 @ t1 @ world[:, b2, :3, :3]
    return out


def retarget_to_avatar(
    motion: Motion,
    rig: Rig,
    mapping: dict[str, str],
    contacts: FootContacts | None = None,
    *,
    reach: bool = True,
) -> AvatarAnimation:
    """``motion`` (the default skeleton) performed by the avatar ``rig`` (see the module doc). When the
    motion carries finger joints (hand tracking), the avatar's finger bones found by
    `mapping.finger_mapping` follow them; otherwise they keep their rest pose. ``reach=False`` leaves
    the arms at the rotations copied from the source (the hands do not reach for the source's)."""
    if "thumb_01_l" in motion.skeleton.names:
        from mocapd.avatars.mapping import finger_mapping

        fingers = finger_mapping(rig.names, rig.parents, mapping, rig.vrm_humanoid)
        mapping = {**mapping, **{k: v for k, v in fingers.items() if v not in mapping.values()}}
    s = _Solver(motion, rig, mapping)
    pelvis_pos = s.src_pos[:, s.motion.skeleton.index("pelvis")] * s.scale  # (F, 3)
    reached = _reach(s, s.pose(pelvis_pos), rig.height_m() / motion.skeleton.stature_m()) if reach else {}
    world = s.pose(pelvis_pos, reached)
    nf = world.shape[0]
    feet = [(side, s.bone[f"thigh_{side}"], s.bone[f"calf_{side}"], s.bone[f"foot_{side}"]) for side in ("l", "r")]
    if contacts is not None and contacts.num_frames == nf:
        contact = contacts.per_foot  # (F, 2) left, right
        toes = contact & ~contacts.contact[:, [0, 2]]  # (F, 2) the heel up, the foot on its toes
    else:
        contact = np.zeros((nf, 2), dtype=bool)
        toes = contact
    point = _ContactPoints(s, toes)
    # 1. vertical: a foot in contact has its contact point (ankle, or ball on tiptoe) at its rest height
    dz = np.zeros(nf)
    known = contact.any(axis=1)
    gaps = [point.ground(i) - point.of(world, i)[:, 2] for i in range(2)]
    for i in range(2):
        dz = np.where(contact[:, i] & ~(contact[:, 1 - i]), gaps[i], dz)
    # both feet down: their mean, but no higher than lets each leg reach down to its point
    reach_down = []
    for i, (_, thigh, calf, foot) in enumerate(feet):
        hip, knee, ankle = (world[:, b, :3, 3] for b in (thigh, calf, foot))
        length = 0.99 * (np.linalg.norm(knee - hip, axis=1) + np.linalg.norm(ankle - knee, axis=1))
        flat = np.sum((ankle - hip)[:, :2] ** 2, axis=1)
        reach_down.append(gaps[i] + np.sqrt(np.maximum(length**2 - flat, 0.0)) - (hip[:, 2] - ankle[:, 2]))
    dz = np.where(contact.all(axis=1), np.minimum(np.mean(gaps, axis=0), np.min(reach_down, axis=0)), dz)
    if known.any():
        lowest = np.min(np.where(contact.T, reach_down, np.inf), axis=0)  # (F,) inf where no foot is down
        dz = np.minimum(_smooth(_interpolate(dz, known), 3), lowest)
    else:  # no contact known: the lowest foot of the clip at its rest height
        dz = np.full(nf, min(float(point.rest_h[i] - world[:, f, 2, 3].min()) for i, (_, _, _, f) in enumerate(feet)))
    pelvis_pos = pelvis_pos + np.stack([np.zeros(nf), np.zeros(nf), dz], axis=1)
    world = s.pose(pelvis_pos, reached)
    # 2. horizontal: the avatar's strides differ from the source's; the drift of the contact points
    # is taken off the root (accumulated), so a planted foot needs little leg correction
    if contact.any():
        step = np.zeros((nf, 2))
        for i in range(2):
            at = point.of(world, i)[:, :2]
            before = point.of(world, i, shift=True)[:, :2]  # the same point (as frame t picks it) at t - 1
            both = contact[1:, i] & contact[:-1, i]
            step[1:] += np.where(both[:, None], at[1:] - before[1:], 0.0)
        count = np.zeros(nf)
        count[1:] = (contact[1:] & contact[:-1]).sum(axis=1)
        drift = np.cumsum(step / np.maximum(count, 1)[:, None], axis=0)
        pelvis_pos = pelvis_pos - np.concatenate([drift, np.zeros((nf, 1))], axis=1)
        world = s.pose(pelvis_pos, reached)
    # 3. pin each contact point to the mean of its positions while it carries the foot
    overrides = dict(reached)
    for i, (_side, thigh, calf, foot) in enumerate(feet):
        ankle = world[:, foot, :3, 3]
        correction = np.zeros((nf, 3))
        weight = np.zeros(nf)
        for start, end in true_runs(contact[:, i]):
            _pin_run(correction, point, world, i, start, end)
            weight[start:end] = 1.0
            for k in range(1, _BLEND_FRAMES + 1):  # ramp out after lift-off and in before touch-down
                w = 1.0 - k / (_BLEND_FRAMES + 1)
                if end - 1 + k < nf and weight[end - 1 + k] < w:
                    correction[end - 1 + k] = correction[end - 1] * w
                    weight[end - 1 + k] = w
                if start - k >= 0 and weight[start - k] < w:
                    correction[start - k] = correction[start] * w
                    weight[start - k] = w
        active = weight > 0
        if not active.any():
            continue
        hip, knee = world[active, thigh, :3, 3], world[active, calf, :3, 3]
        forward = s.src_rot[active, s.motion.skeleton.index("pelvis")] @ np.array([0.0, -1.0, 0.0])  # knees bend forwards
        t1, t2 = _bounded_reach(hip, knee, ankle[active], ankle[active] + correction[active], forward,
                                np.radians(MAX_PIN_TURN_DEG))
        thigh_m = np.array(world[:, thigh, :3, :3])
        calf_m = np.array(world[:, calf, :3, :3])
        thigh_m[active] = t1 @ thigh_m[active]
        calf_m[active] = t2 @ t1 @ calf_m[active]
        overrides[thigh], overrides[calf] = thigh_m, calf_m
    if any(overrides[b] is not reached.get(b) for b in overrides):
        world = s.pose(pelvis_pos, overrides)
    # file frame locals
    inv_top = np.linalg.inv(s.top)
    inv_world = np.linalg.inv(world)  # (F, B, 4, 4), one batched call
    local = np.empty_like(world)
    moved = set(s.bone.values()) | set(overrides)
    for b, p in enumerate(rig.parents):
        if b not in moved and p >= 0:
            local[:, b] = rig.rest_local[b]  # an unmapped bone keeps its rest transform, exactly
        else:
            local[:, b] = (inv_top[None] @ world[:, b]) if p < 0 else inv_world[:, p] @ world[:, b]
    return AvatarAnimation(rig, motion.fps, local, world)
