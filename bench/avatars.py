"""Custom avatars: prepare time per rig, retarget and writer speed, and a job's cost with one avatar target.

* ``prepare``: per shared rig, `prepare_file` as the API runs it (a child process: start-up, read,
  map, write the rig) and `prepare_bytes` in this process (read + map only); median of ``--repeat``;
  the stored rig's size (mesh, skin, UVs, materials and their images, once per avatar).
* ``retarget``: the CMU take 131_03 solved onto the default skeleton at 30 fps, retargeted onto each
  rig (`retarget_to_avatar`, foot contacts included): frames per second, with the arms' reaching and
  without (``reach=False``, alternately in the same run); then the FBX and GLB
  writers' time for that take.
* ``positions``: per rig and CMU take (01, 02, 03), the mapped joints against the source's, root-aligned
  and divided by height: max and 95th percentile over frames and joints, the worst joint, the floor
  the two rest poses alone put there, and the hands with and without reaching.
* ``job`` (``--job``): `produce` on cam01.mp4 with ``targetIds ["default"]`` and ``["default",
  "avatar:..."]`` (the avatar copied into the job's inputs as the API does), alternately, in this
  process after a warm-up run; wall seconds and the ratio.

Run:  .venv/bin/python bench/avatars.py [--repeat 3] [--job] [--only prepare|retarget|positions|job]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data"
RIGS = ("quaternius_human.fbx", "quaternius_female.fbx", "godette.vrm", "rigged_figure.glb", "mannequiny.glb",
        "m2m_male.glb")


def bench_prepare(repeat: int) -> None:
    from mocapd.avatars.prepare import prepare_bytes, prepare_file

    print("| rig | bones | vertices | prepare (child process) s | read + map in process s | stored rig KiB |")
    print("|---|---|---|---|---|---|")
    for name in RIGS:
        path = DATA / "avatars" / name
        child, inproc = [], []
        facts = {}
        stored = 0
        for _ in range(repeat):
            with tempfile.TemporaryDirectory() as tmp:
                t = time.perf_counter()
                facts = prepare_file(path, name, Path(tmp) / "rig.npz")
                child.append(time.perf_counter() - t)
                stored = (Path(tmp) / "rig.npz").stat().st_size
            data = path.read_bytes()
            t = time.perf_counter()
            prepare_bytes(data, name)
            inproc.append(time.perf_counter() - t)
        print(f"| {name} | {facts['bones']} | {facts['vertices']} | {statistics.median(child):.2f} | "
              f"{statistics.median(inproc):.2f} | {stored // 1024} |")


def bench_retarget(repeat: int) -> None:
    from tests.support.cmu import cmu_motion

    from mocapd.avatars.prepare import prepare_bytes
    from mocapd.avatars.retarget import retarget_to_avatar
    from mocapd.formats.avatar_gltf import write_avatar_glb
    from mocapd.formats.fbx.avatar import write_avatar_fbx
    from mocapd.pipeline.contacts import detect_contacts
    from mocapd.pipeline.resample import resample_motion

    motion = resample_motion(cmu_motion(DATA / "bvh" / "cmu_131_03.bvh"), 30.0)
    contacts = detect_contacts(motion)
    print(f"\nCMU 131_03 at 30 fps: {motion.num_frames} frames\n")
    print("| rig | retarget frames/s | without reaching frames/s | FBX write s (KiB) | GLB write s (KiB) |")
    print("|---|---|---|---|---|")
    for name in RIGS:
        prepared = prepare_bytes((DATA / "avatars" / name).read_bytes(), name)
        times, plain_t, fbx_t, glb_t = [], [], [], []
        for _ in range(repeat):
            t = time.perf_counter()
            retarget_to_avatar(motion, prepared.rig, prepared.facts["mapping"], contacts, reach=False)
            plain_t.append(time.perf_counter() - t)
            t = time.perf_counter()
            anim = retarget_to_avatar(motion, prepared.rig, prepared.facts["mapping"], contacts)
            times.append(time.perf_counter() - t)
            t = time.perf_counter()
            fbx = write_avatar_fbx(anim)
            fbx_t.append(time.perf_counter() - t)
            t = time.perf_counter()
            glb = write_avatar_glb(anim)
            glb_t.append(time.perf_counter() - t)
        fps = motion.num_frames / statistics.median(times)
        print(f"| {name} | {fps:,.0f} | {motion.num_frames / statistics.median(plain_t):,.0f} | {statistics.median(fbx_t):.2f} ({len(fbx) // 1024}) | "
              f"{statistics.median(glb_t):.2f} ({len(glb) // 1024}) |")


def bench_positions() -> None:
    """Per rig and CMU take: the mapped body joints against the source's, root-aligned and divided by
    height (avatar heightM, source stature), every frame (tests/support/avatar_positions.py)."""
    from tests.support.avatar_positions import position_report, rest_report
    from tests.support.cmu import cmu_motion

    from mocapd.avatars.prepare import prepare_bytes
    from mocapd.avatars.retarget import retarget_to_avatar
    from mocapd.pipeline.contacts import detect_contacts
    from mocapd.pipeline.resample import resample_motion

    hands = ("hand_l", "hand_r")
    print("\nJoint positions, root-aligned, / height (% of height; every frame of each take at 30 fps)\n")
    print("| rig | take | all joints max | p95 | worst joint | rest-pose floor (max) | hands max | hands p95 | "
          "hands p95 without reaching |")
    print("|---|---|---|---|---|---|---|---|---|")
    prepared = {name: prepare_bytes((DATA / "avatars" / name).read_bytes(), name) for name in RIGS}
    for take in ("cmu_131_01", "cmu_131_02", "cmu_131_03"):
        motion = resample_motion(cmu_motion(DATA / "bvh" / f"{take}.bvh"), 30.0)
        contacts = detect_contacts(motion)
        for name in RIGS:
            rig, facts = prepared[name].rig, prepared[name].facts
            mapping, height = facts["mapping"], facts["heightM"]
            anim = retarget_to_avatar(motion, rig, mapping, contacts)
            got = position_report(anim, mapping, height, motion)
            plain = position_report(retarget_to_avatar(motion, rig, mapping, contacts, reach=False), mapping, height,
                                    motion)
            floor = rest_report(anim, mapping, height, motion)
            print(f"| {name} | {take[4:]} | {100 * got.max:.1f} | {100 * got.p95:.1f} | {got.worst()[0]} | "
                  f"{100 * floor.max:.1f} ({floor.worst()[0]}) | {100 * got.of(hands).max:.1f} | "
                  f"{100 * got.of(hands).p95:.1f} | {100 * plain.of(hands).p95:.1f} |")


def bench_job(repeat: int) -> None:
    from mocapd.avatars.prepare import prepare_bytes
    from mocapd.avatars.rig import save_rig
    from mocapd.pipeline.settings import JobSettings
    from mocapd.worker.produce import produce

    video = DATA / "pose2sim_balancing" / "cam01.mp4"
    prepared = prepare_bytes((DATA / "avatars" / "m2m_male.glb").read_bytes(), "m2m_male.glb")
    with tempfile.TemporaryDirectory() as tmp:
        inputs = Path(tmp) / "inputs"
        inputs.mkdir()
        (inputs / "avatar_av_bench.npz").write_bytes(save_rig(prepared.rig))
        (inputs / "avatar_av_bench.json").write_text(json.dumps({"mapping": prepared.facts["mapping"]}))

        def run(targets: tuple[str, ...]) -> float:
            settings = JobSettings(target_ids=targets, export_fps=30, mocap_type="full_body", trim_start_s=0.0,
                                   trim_end_s=1.6)
            with tempfile.TemporaryDirectory() as out:
                t = time.perf_counter()
                produce(video, settings, Path(out), lambda s, f: None, inputs_dir=inputs)
                return time.perf_counter() - t

        run(("default",))  # warm-up: imports, model load
        plain, with_avatar = [], []
        for _ in range(repeat):
            plain.append(run(("default",)))
            with_avatar.append(run(("default", "avatar:av_bench")))
    p, a = statistics.median(plain), statistics.median(with_avatar)
    print(f"\njob on cam01 (100 frames, 30 fps export): default {p:.2f} s, default + avatar {a:.2f} s, "
          f"ratio {a / p:.3f} (runs: {[round(x, 2) for x in plain]} / {[round(x, 2) for x in with_avatar]}; "
          f"load {os.getloadavg()[0]:.1f})")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--job", action="store_true", help="also time a job with and without an avatar target")
    ap.add_argument("--only", choices=("prepare", "retarget", "positions", "job"), help="run this part alone")
    args = ap.parse_args()
    print(f"load average at start: {os.getloadavg()[0]:.1f}\n")
    parts = {args.only} if args.only else {"prepare", "retarget", "positions"} | ({"job"} if args.job else set())
    if "prepare" in parts:
        bench_prepare(args.repeat)
    if "retarget" in parts:
        bench_retarget(args.repeat)
    if "positions" in parts:
        bench_positions()
    if "job" in parts:
        bench_job(args.repeat)
    os._exit(0)  # the FBX binding's wrappers are never released (see mocapd/avatars/read_fbx.py)


if __name__ == "__main__":
    main()
