"""Automatic bone mapping onto the default skeleton, and the checks a mapping must pass.

Order of evidence: VRM's own humanoid table; then names, for the common conventions (Mixamo
``mixamorig:*``, Unreal / MetaHuman ``upperarm_l``, Unity / VRM ``LeftUpperArm``, VRoid ``J_Bip_L_*``,
Rokoko ``LeftThigh``, Character Creator ``CC_Base_L_Upperarm``, Blender Rigify ``DEF-upper_arm.L`` and
metarig ``upper_arm.L``, plain ``Hips/Spine/LeftUpLeg``); then, where names say nothing, the tree's
topology and the rest pose's geometry (two chains going down from the pelvis, one going up to a bone
where two lateral chains and the neck branch off). Positions are in the provisional frame: Z up,
metres, facing not yet known.

The default skeleton's ``root`` (a ground node under the pelvis) is never mapped: the avatar's own
root bones keep their rest transform and the pelvis carries the motion's translation.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from mocapd.avatars.errors import AvatarError

__all__ = [
    "MAPPABLE",
    "REQUIRED",
    "MappingResult",
    "auto_map",
    "validate_mapping",
]

FloatArray = NDArray[np.float64]

# The default skeleton (SPEC section 8) minus its ground node, parents first.
DEFAULT_PARENTS: dict[str, str | None] = {
    "pelvis": None,
    "spine_01": "pelvis",
    "spine_02": "spine_01",
    "spine_03": "spine_02",
    "neck_01": "spine_03",
    "head": "neck_01",
    "clavicle_l": "spine_03",
    "upperarm_l": "clavicle_l",
    "lowerarm_l": "upperarm_l",
    "hand_l": "lowerarm_l",
    "clavicle_r": "spine_03",
    "upperarm_r": "clavicle_r",
    "lowerarm_r": "upperarm_r",
    "hand_r": "lowerarm_r",
    "thigh_l": "pelvis",
    "calf_l": "thigh_l",
    "foot_l": "calf_l",
    "ball_l": "foot_l",
    "thigh_r": "pelvis",
    "calf_r": "thigh_r",
    "foot_r": "calf_r",
    "ball_r": "foot_r",
}
MAPPABLE: tuple[str, ...] = tuple(DEFAULT_PARENTS)
_SPINE = ("spine_01", "spine_02", "spine_03")
REQUIRED: tuple[str, ...] = (
    "pelvis", "head",
    "upperarm_l", "lowerarm_l", "hand_l", "upperarm_r", "lowerarm_r", "hand_r",
    "thigh_l", "calf_l", "foot_l", "thigh_r", "calf_r", "foot_r",
)  # fmt: skip  (and at least one spine bone)

# Side-less core names (lower case, separators removed) -> default joint stem.
_CORE = {
    "pelvis": ("hips", "hip", "pelvis"),
    "neck": ("neck", "neck1", "neck01", "necktwist01", "neck0"),
    "head": ("head",),
    "clavicle": ("shoulder", "clavicle", "collar", "collarbone"),
    "upperarm": ("arm", "upperarm", "uparm"),
    "lowerarm": ("forearm", "lowerarm", "elbow"),
    "hand": ("hand", "wrist", "palm"),
    "thigh": ("upleg", "upperleg", "thigh"),
    "calf": ("leg", "lowerleg", "calf", "shin", "knee"),
    "foot": ("foot", "ankle"),
    "ball": ("toebase", "toe", "toes", "ball", "toe0"),
}
_CORE_TO_STEM = {c: stem for stem, cores in _CORE.items() for c in cores}
_SPINE_RE = re.compile(r"^(spine|chest|upperchest|abdomen|torso|waist|tummy|stomach)\d*$")
_RIGIFY_SPINE_RE = re.compile(r"^spine(\d{3})?$")
_END_TOKENS = {"end", "leaf", "nub", "tip", "top", "twist", "roll", "ik", "pole", "target", "ctrl", "helper"}
_NOISE_TOKENS = {"mixamorig", "cc", "base", "def", "org", "mch", "j", "bip", "bip01", "bip001", "armature",
                 "jnt", "joint", "sk", "c", "bn", "b", "valvebiped", "rig", "skeleton", "char", "character"}
_FINGER_RE = re.compile(r"(thumb|index|middle|ring|pinky|little|finger|fingers)")
_VRM = {
    "hips": "pelvis", "neck": "neck_01", "head": "head",
    "leftShoulder": "clavicle_l", "leftUpperArm": "upperarm_l", "leftLowerArm": "lowerarm_l", "leftHand": "hand_l",
    "rightShoulder": "clavicle_r", "rightUpperArm": "upperarm_r", "rightLowerArm": "lowerarm_r", "rightHand": "hand_r",
    "leftUpperLeg": "thigh_l", "leftLowerLeg": "calf_l", "leftFoot": "foot_l", "leftToes": "ball_l",
    "rightUpperLeg": "thigh_r", "rightLowerLeg": "calf_r", "rightFoot": "foot_r", "rightToes": "ball_r",
}  # fmt: skip
_VRM_SPINE = ("spine", "chest", "upperChest")


@dataclass(frozen=True)
class MappingResult:
    mapping: dict[str, str]  # default joint -> avatar bone name
    method: str  # "vrm" | "names" | "topology"
    forward: FloatArray  # (3,) the character's facing in the provisional frame (horizontal, unit)


def _tokens(name: str) -> list[str]:
    base = name.rsplit(":", 1)[-1]
    base = re.sub(r"([a-z])([A-Z])", r"\1 \2", base)
    base = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1 \2", base)
    return [t for t in re.split(r"[^A-Za-z0-9]+", base.lower()) if t]


def split_name(name: str) -> tuple[str | None, str, bool]:
    """(side "l"/"r"/None, side-less core, is an end/helper bone) of a bone name."""
    toks = _tokens(name)
    side = None
    core: list[str] = []
    for i, t in enumerate(toks):
        if t in ("l", "left") and side is None:
            side = "l"
        elif t in ("r", "right") and side is None:
            side = "r"
        elif re.fullmatch(r"(left|right)[a-z0-9]+", t) and side is None:  # "lefthand" written as one word
            side = "l" if t.startswith("left") else "r"
            core.append(t[4:] if side == "l" else t[5:])
        elif t in _NOISE_TOKENS or (i == 0 and re.fullmatch(r"mixamorig\d*", t)):
            continue
        else:
            core.append(t)
    joined = "".join(core)
    ended = any(t in _END_TOKENS for t in core) and joined not in _CORE_TO_STEM
    return side, joined, ended


def has_fingers(names: list[str]) -> bool:
    return any(_FINGER_RE.search(split_name(n)[1]) for n in names)


class _Tree:
    def __init__(self, names: list[str], parents: NDArray[np.int64], pos: FloatArray, deform: NDArray[np.int64]):
        self.names = names
        self.parents = parents
        self.pos = pos
        self.deform = deform
        self.children: list[list[int]] = [[] for _ in names]
        for b, p in enumerate(parents):
            if p >= 0:
                self.children[int(p)].append(b)
        self.depth = np.zeros(len(names), dtype=np.int64)
        for b, p in enumerate(parents):
            self.depth[b] = 0 if p < 0 else self.depth[p] + 1
        lo = pos[:, 2].min() if len(pos) else 0.0
        hi = pos[:, 2].max() if len(pos) else 0.0
        self.height = float(max(hi - lo, 1e-9))
        self.ground = float(lo)
        # subtree extents: min z, max z, max horizontal distance from the bone
        self.sub_min = pos[:, 2].copy()
        self.sub_max = pos[:, 2].copy()
        for b in range(len(names) - 1, -1, -1):
            for c in self.children[b]:
                self.sub_min[b] = min(self.sub_min[b], self.sub_min[c])
                self.sub_max[b] = max(self.sub_max[b], self.sub_max[c])

    def is_ancestor(self, a: int, b: int) -> bool:
        while b >= 0:
            if a == b:
                return True
            b = int(self.parents[b])
        return False

    def descendants(self, b: int) -> list[int]:
        out, stack = [], [b]
        while stack:
            x = stack.pop()
            out.append(x)
            stack.extend(self.children[x])
        return out

    def lateral(self, b: int, origin: FloatArray) -> float:
        d = self.pos[self.descendants(b)] - origin
        return float(np.linalg.norm(d[:, :2], axis=1).max())


# ------------------------------------------------------------------------------------------- names
def _pick(cands: list[int], tree: _Tree) -> int:
    return min(cands, key=lambda b: (tree.deform[b] <= 0, tree.depth[b], b))


def _spine_chain(tree: _Tree, pelvis: int, top: int | None, cands: list[int]) -> dict[str, int]:
    """Distribute the spine bones between the pelvis and the chest onto spine_01..03."""
    chain = sorted({b for b in cands if tree.is_ancestor(pelvis, b) and b != pelvis
                    and (top is None or tree.is_ancestor(b, top))}, key=lambda b: tree.depth[b])
    if not chain and top is not None:  # names say nothing: the bones between pelvis and neck
        b = int(tree.parents[top])
        while b >= 0 and b != pelvis:
            chain.insert(0, b)
            b = int(tree.parents[b])
    out: dict[str, int] = {}
    if not chain:
        return out
    out["spine_01"] = chain[0]
    if len(chain) >= 2:
        out["spine_03"] = chain[-1]
    if len(chain) >= 3:
        out["spine_02"] = chain[len(chain) // 2] if len(chain) > 3 else chain[1]
    return out


def _by_names(tree: _Tree) -> dict[str, int]:
    split = [split_name(n) for n in tree.names]
    rigify = any(_RIGIFY_SPINE_RE.fullmatch(c) and c != "spine" for _, c, _ in split)
    deform_names = any(n.upper().startswith("DEF-") for n in tree.names)
    cands: dict[str, list[int]] = {}
    spine_cands: list[int] = []
    for b, (side, core, ended) in enumerate(split):
        if ended or not core:
            continue
        if rigify and deform_names and not tree.names[b].upper().startswith("DEF-"):
            continue
        if rigify and side is None and _RIGIFY_SPINE_RE.fullmatch(core):
            num = int(core[5:] or 0)
            key = {0: "pelvis", 4: "neck_01", 6: "head"}.get(num)
            if key is not None:
                cands.setdefault(key, []).append(b)
            elif num in (1, 2, 3):
                spine_cands.append(b)
            continue
        if side is None and _SPINE_RE.fullmatch(core):
            spine_cands.append(b)
            continue
        stem = _CORE_TO_STEM.get(core)
        if stem is None:
            continue
        if stem in ("pelvis", "head"):
            if side is None:
                cands.setdefault(stem, []).append(b)
        elif stem == "neck":
            if side is None:
                cands.setdefault("neck_01", []).append(b)
        elif side is not None:
            cands.setdefault(f"{stem}_{side}", []).append(b)
    out: dict[str, int] = {}
    for key, bs in cands.items():
        if key != "pelvis":
            out[key] = _pick(bs, tree)
    if "pelvis" in cands:
        thighs = [out[k] for k in ("thigh_l", "thigh_r") if k in out]
        above = [b for b in cands["pelvis"] if all(tree.is_ancestor(b, t) for t in thighs)] or cands["pelvis"]
        out["pelvis"] = max(above, key=lambda b: (tree.deform[b] > 0, tree.depth[b]))
    if "pelvis" in out:
        out.update(_spine_chain(tree, out["pelvis"], out.get("neck_01", out.get("head")), spine_cands))
    return out


def _by_vrm(tree: _Tree, table: dict[str, str]) -> dict[str, int]:
    index = {n: b for b, n in enumerate(tree.names)}
    out = {_VRM[k]: index[v] for k, v in table.items() if k in _VRM and v in index}
    spine = [index[table[k]] for k in _VRM_SPINE if table.get(k) in index]
    if "pelvis" in out:
        out.update(_spine_chain(tree, out["pelvis"], out.get("neck_01", out.get("head")), spine))
    return out


# ---------------------------------------------------------------------------------------- topology
def _down_chain(tree: _Tree, b: int) -> list[int]:
    chain = [b]
    while tree.children[chain[-1]]:
        chain.append(min(tree.children[chain[-1]], key=lambda c: (tree.sub_min[c], -tree.deform[c])))
    return chain


def _by_topology(tree: _Tree) -> tuple[dict[str, int], list[tuple[str, int]]]:
    """Map by shape; returns the mapping with sides still unknown ("a"/"b" for the two limbs)."""
    h = tree.height
    best = None
    for b in range(len(tree.names)):
        z = tree.pos[b, 2]
        low = [c for c in tree.children[b] if tree.sub_min[c] < z - 0.25 * h]
        high = [c for c in tree.children[b] if tree.sub_max[c] > z + 0.2 * h]
        if len(low) >= 2 and high:
            score = (len(low) == 2, -abs(z - tree.ground - 0.5 * h), tree.depth[b])
            if best is None or score > best[0]:
                best = (score, b, low, high)
    if best is None:
        raise AvatarError("avatar_not_humanoid", "No pelvis found: no bone has two legs below it and a spine above.")
    _, pelvis, low, high = best
    out: dict[str, int] = {"pelvis": pelvis}
    limbs: list[tuple[str, int]] = []
    legs = sorted(low, key=lambda c: tree.sub_min[c])[:2]
    for tag, leg in zip("ab", legs, strict=True):
        chain = _down_chain(tree, leg)
        chain = [c for c in chain if not split_name(tree.names[c])[2] or c == chain[0]]
        foot = len(chain) - 1
        for i in range(1, len(chain) - 1):
            seg = tree.pos[chain[i + 1]] - tree.pos[chain[i]]
            toe_on_ground = tree.pos[chain[i + 1], 2] - tree.ground < 0.03 * h < tree.pos[chain[i], 2] - tree.ground
            if i >= 2 and (np.linalg.norm(seg[:2]) > abs(seg[2]) or toe_on_ground):
                foot = i
                break
        if foot < 2:
            raise AvatarError("avatar_not_humanoid", "A leg has no knee: it needs a thigh, a calf and a foot.")
        zmid = 0.5 * (tree.pos[chain[0], 2] + tree.pos[chain[foot], 2])
        calf = min(range(1, foot), key=lambda i: abs(tree.pos[chain[i], 2] - zmid))
        out[f"thigh_{tag}"], out[f"calf_{tag}"], out[f"foot_{tag}"] = chain[0], chain[calf], chain[foot]
        if foot + 1 < len(chain):
            out[f"ball_{tag}"] = chain[foot + 1]
        limbs.append((tag, chain[0]))
    # spine: up from the pelvis to the first bone where two lateral chains branch off
    up = max(high, key=lambda c: tree.sub_max[c])
    chest = None
    spine = []
    b = up
    while True:
        spine.append(b)
        lat = [c for c in tree.children[b] if tree.lateral(c, tree.pos[b]) > 0.2 * h]
        if len(lat) >= 2:
            chest = b
            break
        if not tree.children[b]:
            break
        b = max(tree.children[b], key=lambda c: (tree.sub_max[c], len(tree.descendants(c))))
    if chest is None:
        raise AvatarError("avatar_not_humanoid", "No chest found: no bone above the pelvis has two arms branching off.")
    arms = sorted((c for c in tree.children[chest] if tree.lateral(c, tree.pos[chest]) > 0.2 * h),
                  key=lambda c: -tree.lateral(c, tree.pos[chest]))[:2]
    rest = [c for c in tree.children[chest] if c not in arms]
    if rest:
        neck = max(rest, key=lambda c: tree.sub_max[c])
        chain = [neck]
        while tree.children[chain[-1]]:
            chain.append(max(tree.children[chain[-1]], key=lambda c: tree.sub_max[c]))
        chain = [c for c in chain if not split_name(tree.names[c])[2]] or chain[:1]
        if len(chain) >= 2:
            out["neck_01"], out["head"] = chain[0], chain[1]
        else:
            out["head"] = chain[0]
    if len(spine) == 1:
        out["spine_03"] = chest
    else:
        out["spine_01"], out["spine_03"] = spine[0], spine[-1]
        if len(spine) >= 3:
            out["spine_02"] = spine[len(spine) // 2]
    for tag, arm in zip("ab", arms, strict=True):
        chain = [arm]
        while tree.children[chain[-1]]:
            kids = tree.children[chain[-1]]
            if len(kids) >= 2 and len(chain) >= 3:
                break  # the hand: fingers branch here
            chain.append(max(kids, key=lambda c: tree.lateral(c, tree.pos[chest])))
        chain = [c for c in chain if not split_name(tree.names[c])[2]] or chain
        if len(chain) < 3:
            raise AvatarError("avatar_not_humanoid", "An arm needs an upper arm, a forearm and a hand.")
        hand = len(chain) - 1
        if len(chain) >= 4:
            out[f"clavicle_{tag}"] = chain[0]
            start = 1
        else:
            start = 0
        shoulder = tree.pos[chain[start]]
        span = np.linalg.norm(tree.pos[chain[hand]] - shoulder)
        mids = range(start + 1, hand)
        elbow = min(mids, key=lambda i: abs(np.linalg.norm(tree.pos[chain[i]] - shoulder) - 0.5 * span))
        out[f"upperarm_{tag}"], out[f"lowerarm_{tag}"], out[f"hand_{tag}"] = chain[start], chain[elbow], chain[hand]
        limbs.append((tag, chain[start]))
    return out, limbs


# ---------------------------------------------------------------------------------------- entry
def _forward_from_sides(tree: _Tree, m: dict[str, int]) -> FloatArray | None:
    pairs = [(f"{s}_l", f"{s}_r") for s in ("thigh", "upperarm", "foot", "hand", "clavicle")]
    left = np.zeros(3)
    for a, b in pairs:
        if a in m and b in m:
            left += tree.pos[m[a]] - tree.pos[m[b]]
    left[2] = 0.0
    n = np.linalg.norm(left)
    if n < 1e-9:
        return None
    left /= n
    return np.cross(left, [0.0, 0.0, 1.0])  # forward = left x up


def _forward_from_feet(tree: _Tree, m: dict[str, int], fallback: FloatArray) -> FloatArray:
    f = np.zeros(3)
    for t in ("a", "b", "l", "r"):
        if f"ball_{t}" in m and f"foot_{t}" in m:
            f += tree.pos[m[f"ball_{t}"]] - tree.pos[m[f"foot_{t}"]]
    f[2] = 0.0
    n = np.linalg.norm(f)
    return f / n if n > 1e-6 else fallback


def _complete(m: dict[str, int]) -> list[str]:
    missing = [k for k in REQUIRED if k not in m]
    if not any(k in m for k in _SPINE):
        missing.append("spine_01")
    return missing


def auto_map(
    names: list[str],
    parents: NDArray[np.int64],
    pos: FloatArray,
    deform: NDArray[np.int64],
    *,
    vrm_humanoid: dict[str, str] | None,
    fallback_forward: FloatArray,
) -> MappingResult:
    """The automatic mapping; raises ``avatar_not_humanoid`` when the required bones cannot all be found."""
    tree = _Tree(names, parents, pos, deform)
    m: dict[str, int] = {}
    method = "names"
    if vrm_humanoid:
        m, method = _by_vrm(tree, vrm_humanoid), "vrm"
    if _complete(m):
        named = _by_names(tree)
        if len(named) > len(m):
            m, method = named, "names"
    forward: FloatArray | None = None
    if _complete(m) or not _plausible(tree, m):
        topo, _limbs = _by_topology(tree)
        forward = _forward_from_feet(tree, topo, fallback_forward)
        left = np.cross([0.0, 0.0, 1.0], forward)
        origin = tree.pos[topo["pelvis"]]
        m = {}
        for k, b in topo.items():
            if k[-2:] in ("_a", "_b"):
                tag = k[-1]
                root = topo[f"thigh_{tag}"] if k.split("_")[0] in ("thigh", "calf", "foot", "ball") else topo[f"upperarm_{tag}"]
                side = "l" if float(np.dot(tree.pos[root] - origin, left)) > 0 else "r"
                m[f"{k[:-2]}_{side}"] = b
            else:
                m[k] = b
        method = "topology"
        pairs = [("thigh_l", "thigh_r"), ("upperarm_l", "upperarm_r")]
        if any(a not in m or b not in m for a, b in pairs):
            raise AvatarError("avatar_not_humanoid", "Left and right limbs could not be told apart.")
    missing = _complete(m)
    if missing:
        raise AvatarError(
            "avatar_not_humanoid",
            f"No bone found for: {', '.join(missing)} (a humanoid needs a pelvis, a spine, a head, "
            "two arms down to the hands and two legs down to the feet).",
            details={"missing": missing},
        )
    if not _plausible(tree, m):
        raise AvatarError("avatar_not_humanoid", "The skeleton does not stand like a humanoid (head above pelvis above feet).")
    if forward is None:
        forward = _forward_from_sides(tree, m)
        if forward is None:
            forward = fallback_forward
    return MappingResult({k: names[b] for k, b in sorted(m.items(), key=lambda kv: MAPPABLE.index(kv[0]))},
                         method, forward)


def _plausible(tree: _Tree, m: dict[str, int]) -> bool:
    if _complete(m):
        return False
    z = tree.pos[:, 2]
    h = tree.height
    pelvis, head = z[m["pelvis"]], z[m["head"]]
    feet = max(z[m["foot_l"]], z[m["foot_r"]])
    return bool(head > pelvis + 0.15 * h and pelvis > feet + 0.2 * h)


def validate_mapping(mapping: dict[str, str], names: list[str], parents: NDArray[np.int64]) -> dict[str, str]:
    """A user's mapping checked: known joints, existing bones, no bone twice, hierarchy kept, the
    required joints present. Raises ``avatar_mapping_invalid`` naming the offending bone."""
    index = {n: b for b, n in enumerate(names)}

    def bad(msg: str, **details: object) -> AvatarError:
        return AvatarError("avatar_mapping_invalid", msg, details=dict(details))

    for k, v in mapping.items():
        if k not in DEFAULT_PARENTS:
            raise bad(f"'{k}' is not a bone of the default skeleton.", bone=k, allowed=list(MAPPABLE))
        if not isinstance(v, str) or v not in index:
            raise bad(f"The avatar has no bone named {v!r} (mapped from '{k}').", bone=k, avatarBone=v)
    seen: dict[str, str] = {}
    for k, v in mapping.items():
        if v in seen:
            raise bad(f"Avatar bone '{v}' is mapped twice ('{seen[v]}' and '{k}').", bone=k, avatarBone=v)
        seen[v] = k

    def is_ancestor(a: int, b: int) -> bool:
        while b >= 0:
            if a == b:
                return True
            b = int(parents[b])
        return False

    for k, v in mapping.items():
        p = DEFAULT_PARENTS[k]
        while p is not None and p not in mapping:
            p = DEFAULT_PARENTS[p]
        if p is not None and is_ancestor(index[v], index[mapping[p]]):
            raise bad(
                f"'{k}' is mapped to '{v}', which is above '{mapping[p]}' (mapped from its parent '{p}').",
                bone=k, avatarBone=v, parent=p,
            )
    missing = _complete({k: index[v] for k, v in mapping.items()})
    if missing:
        raise bad(f"The mapping needs a bone for: {', '.join(missing)}.", bone=missing[0], missing=missing)
    return {k: mapping[k] for k in MAPPABLE if k in mapping}


# ------------------------------------------------------------------------------------------ fingers
FINGERS = ("thumb", "index", "middle", "ring", "pinky")
_FINGER_WORDS = {"thumb": "thumb", "index": "index", "middle": "middle", "ring": "ring", "pinky": "pinky",
                 "little": "pinky", "pointer": "index", "mid": "middle"}
_VRM_FINGERS = {"Thumb": "thumb", "Index": "index", "Middle": "middle", "Ring": "ring", "Little": "pinky"}
_VRM_SEGMENTS = ("Proximal", "Intermediate", "Distal")
FINGER_PARENTS: dict[str, str] = {
    f"{f}_0{k}_{s}": (f"hand_{s}" if k == 1 else f"{f}_0{k - 1}_{s}")
    for s in ("l", "r") for f in FINGERS for k in (1, 2, 3)
}


def finger_mapping(
    names: list[str], parents: NDArray[np.int64], mapping: dict[str, str], vrm_humanoid: dict[str, str] | None
) -> dict[str, str]:
    """Finger joints of the default skeleton (``thumb_01_l`` .. ``pinky_03_r``, SPEC 16) -> avatar bones:
    VRM's table where there is one, else each chain under a mapped hand named after its finger (Mixamo
    ``LeftHandIndex1``, Unreal ``index_01_l``, Blender ``thumb.01.L``...), its first three bones in
    order. End and helper bones are skipped; a finger the names do not identify stays unmapped."""
    out: dict[str, str] = {}
    if vrm_humanoid:
        for side, word in (("l", "left"), ("r", "right")):
            for vrm_name, finger in _VRM_FINGERS.items():
                for k, seg in enumerate(_VRM_SEGMENTS, start=1):
                    bone = vrm_humanoid.get(f"{word}{vrm_name}{seg}")
                    if bone in names:
                        out[f"{finger}_0{k}_{side}"] = bone
        if out:
            return out
    index = {n: b for b, n in enumerate(names)}
    children: dict[int, list[int]] = {}
    for b, p in enumerate(parents):
        children.setdefault(int(p), []).append(b)
    for side in ("l", "r"):
        hand = index.get(mapping.get(f"hand_{side}", ""))
        if hand is None:
            continue
        for start in children.get(hand, []):
            digit = _finger_of(names[start])
            if digit is None or f"{digit}_01_{side}" in out:
                continue
            chain = [start]
            while True:
                kids = [c for c in children.get(chain[-1], []) if _finger_of(names[c]) == digit
                        and not split_name(names[c])[2]]
                if not kids:
                    break
                chain.append(kids[0])
            for k, link in enumerate(chain[:3], start=1):
                out[f"{digit}_0{k}_{side}"] = names[link]
    return out


def _finger_of(name: str) -> str | None:
    _side, core, ended = split_name(name)
    if ended or core.endswith("hand"):  # a palm bone ("MiddleHand"), not a finger
        return None
    for word, finger in _FINGER_WORDS.items():
        if re.search(word, core):
            return finger
    return None
