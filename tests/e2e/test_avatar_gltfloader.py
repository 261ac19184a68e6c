"""The avatar GLB loaded by three.js's GLTFLoader (the copy the Studio ships) in a real headless
Chromium: a skinned mesh bound to the avatar's own bones, one animation of the take's length, and,
played by three.js's AnimationMixer, the bones where our forward kinematics puts them."""

from __future__ import annotations

import functools
import http.server
import json
import re
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from mocapd.avatars.prepare import prepare_bytes
from mocapd.avatars.retarget import retarget_to_avatar
from mocapd.formats.avatar_gltf import gltf_from_file, write_avatar_glb
from mocapd.pipeline.contacts import detect_contacts
from mocapd.pipeline.resample import resample_motion
from mocapd.pipeline.skeleton import Motion
from tests.conftest import PROJECT_ROOT, shared_file
from tests.support.cmu import cmu_motion
from tests.support.rigs import RIGS, rig_bytes

pytestmark = pytest.mark.slow
playwright_api = pytest.importorskip("playwright.sync_api", reason="Playwright's Python package is not installed")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None:
    pytest.skip("Debian's chromium is not installed (apt-get install chromium; .ci/run does)", allow_module_level=True)

VENDOR = PROJECT_ROOT / "src" / "mocapd" / "api" / "studio" / "static" / "vendor" / "three"
FRAMES = 40
PROBE = (0, 13, 27, 39)
PAGE = """<!doctype html><meta charset="utf-8"><script type="module">
import * as THREE from './three/three.module.js';
import { GLTFLoader } from './three/GLTFLoader.js';
const out = {};
for (const name of NAMES) {
  const gltf = await new GLTFLoader().loadAsync(`./${name}.glb`);
  const scene = gltf.scene;
  const skinned = []; scene.traverse((o) => { if (o.isSkinnedMesh) skinned.push(o); });
  const bones = skinned.length ? skinned[0].skeleton.bones.map((b) => b.name) : [];
  const mixer = new THREE.AnimationMixer(scene);
  const clip = gltf.animations[0];
  const action = mixer.clipAction(clip);
  action.setLoop(THREE.LoopOnce); action.clampWhenFinished = true; action.play();  // the last frame, not frame 0
  const frames = [];
  for (const f of PROBE) {
    mixer.setTime(f / FPS); scene.updateMatrixWorld(true);
    const p = new THREE.Vector3();
    frames.push(skinned[0].skeleton.bones.map((b) => b.getWorldPosition(p).toArray()));
  }
  out[name] = { skinned: skinned.length, bones, animations: gltf.animations.length, duration: clip.duration, frames };
}
window.result = out;
</script>"""


def _take() -> Motion:
    m = resample_motion(cmu_motion(shared_file("bvh/cmu_131_01.bvh")), 30.0)
    return Motion(m.skeleton, m.fps, m.local_translation_m[80 : 80 + FRAMES], m.local_quat_wxyz[80 : 80 + FRAMES])


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, np.ndarray]]]:
    root = tmp_path_factory.mktemp("gltfloader")
    shutil.copytree(VENDOR, root / "three")
    motion = _take()
    expected: dict[str, np.ndarray] = {}
    for name in RIGS:
        prepared = prepare_bytes(rig_bytes(name), name)
        anim = retarget_to_avatar(motion, prepared.rig, prepared.facts["mapping"], detect_contacts(motion))
        stem = Path(name).stem
        (root / f"{stem}.glb").write_bytes(write_avatar_glb(anim))
        to_gltf = gltf_from_file(prepared.rig) @ np.linalg.inv(prepared.rig.to_norm)
        expected[stem] = np.einsum("ij,fbj->fbi", to_gltf, anim.world_norm[:, :, :, 3])[..., :3]  # (F, B, 3)
    names = json.dumps([Path(n).stem for n in RIGS])
    (root / "index.html").write_text(PAGE.replace("NAMES", names).replace("PROBE", json.dumps(PROBE)).replace("FPS", "30"))
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/index.html", expected
    finally:
        server.shutdown()
        server.server_close()


def test_three_js_loads_and_plays_the_avatar(site: tuple[str, dict[str, np.ndarray]]) -> None:
    url, expected = site
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(url)
            page.wait_for_function("window.result !== undefined", timeout=60_000)
            result = page.evaluate("window.result")
        finally:
            browser.close()
    assert not errors, errors
    for name in RIGS:
        stem = Path(name).stem
        got = result[stem]
        # three.js sanitises node names for its property bindings (spaces -> "_", "[].:/" dropped)
        names = [re.sub(r"[\[\].:/]", "", re.sub(r"\s", "_", n)) for n in prepare_bytes(rig_bytes(name), name).rig.names]
        assert got["skinned"] >= 1 and got["animations"] == 1 and got["bones"] == names
        assert got["duration"] == pytest.approx((FRAMES - 1) / 30.0, abs=1e-4)
        height = float(np.ptp(expected[stem][0][:, 1]))
        for k, frame in enumerate(PROBE):
            err = np.linalg.norm(np.array(got["frames"][k]) - expected[stem][frame], axis=1)
            bad = [names[i] for i in np.flatnonzero(err > 2e-3 * max(height, 1.0))]
            assert not bad, (stem, frame, float(err.max()), bad)
