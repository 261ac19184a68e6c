#!/usr/bin/env python3
"""Refresh (or check) the Studio's pinned third-party scripts from the npm registry.

The Studio runs offline on a self-hosted machine, so mocapd serves its own copies of three.js and
tus-js-client from src/mocapd/api/studio/static/vendor/. This script is the only way they change:

    python scripts/refresh_studio_vendor.py            # download the pinned tarballs, verify, rewrite the copies
    python scripts/refresh_studio_vendor.py --check    # offline: the copies on disk match vendor.lock.json
    python scripts/refresh_studio_vendor.py --upgrade  # pin the registry's latest versions, then refresh

A tarball is accepted only when its SHA-512 matches the registry's integrity value pinned here (and
in the lock file); every copied file's SHA-256 is recorded. three.js's add-ons import the bare name
'three', which a browser without an import map cannot resolve; the copies import the relative file
instead (the only change made to any file, recorded in the lock as `rewrites`).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import re
import sys
import tarfile
import urllib.request
from pathlib import Path

VENDOR = Path(__file__).resolve().parents[1] / "src" / "mocapd" / "api" / "studio" / "static" / "vendor"
LOCK = VENDOR / "vendor.lock.json"
REGISTRY = "https://registry.npmjs.org"

# package -> (version, npm integrity, {file in tarball: name in vendor/}, licence file)
PINS: dict[str, dict[str, object]] = {
    "three": {
        "version": "0.187.0",
        "integrity": "sha512-Qiu7R+Cmh8CstZsY1uJOSWnVlfo7ZtNLV7mF8Jltk3LB3AtDu9cRZlcnRKkAk8Y4z6KKw35z7Y7Urd7jWY8etA==",
        "files": {
            "package/build/three.module.js": "three/three.module.js",
            "package/build/three.core.js": "three/three.core.js",
            "package/examples/jsm/loaders/GLTFLoader.js": "three/GLTFLoader.js",
            "package/examples/jsm/controls/OrbitControls.js": "three/OrbitControls.js",
            "package/examples/jsm/utils/BufferGeometryUtils.js": "three/BufferGeometryUtils.js",
            "package/examples/jsm/utils/SkeletonUtils.js": "three/SkeletonUtils.js",
            "package/LICENSE": "three/LICENSE",
        },
    },
    "tus-js-client": {
        "version": "4.3.1",
        "integrity": "sha512-ZLeYmjrkaU1fUsKbIi8JML52uAocjEZtBx4DKjRrqzrZa0O4MYwT6db+oqePlspV+FxXJAyFBc/L5gwUi2OFsg==",
        "files": {
            "package/dist/tus.min.js": "tus/tus.min.js",
            "package/LICENSE": "tus/LICENSE",
        },
    },
}

_IMPORT_REWRITES = [
    (re.compile(r"from 'three';"), "from './three.module.js';"),
    (re.compile(r"from '\.\./utils/(\w+\.js)';"), r"from './\1';"),
]


def _rewrite(name: str, data: bytes) -> tuple[bytes, int]:
    if not name.startswith("three/") or not name.endswith(".js") or name.startswith("three/three."):
        return data, 0
    text, count = data.decode(), 0
    for pattern, repl in _IMPORT_REWRITES:
        text, n = pattern.subn(repl, text)
        count += n
    return text.encode(), count


def _fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=60) as r:  # noqa: S310 - a fixed https registry URL
        return bytes(r.read())


def _integrity(data: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


def refresh(pins: dict[str, dict[str, object]]) -> dict[str, object]:
    lock: dict[str, object] = {"registry": REGISTRY, "packages": {}}
    for package, pin in pins.items():
        version = str(pin["version"])
        tarball = f"{REGISTRY}/{package}/-/{package.split('/')[-1]}-{version}.tgz"
        data = _fetch(tarball)
        if _integrity(data) != pin["integrity"]:
            raise SystemExit(f"{package}@{version}: the tarball's SHA-512 does not match the pinned integrity")
        files: dict[str, dict[str, object]] = {}
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            for member, dest in dict(pin["files"]).items():  # type: ignore[call-overload]
                f = tar.extractfile(member)
                if f is None:
                    raise SystemExit(f"{package}@{version}: {member} is missing from the tarball")
                body, rewrites = _rewrite(dest, f.read())
                out = VENDOR / dest
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_bytes(body)
                files[dest] = {"from": member, "sha256": hashlib.sha256(body).hexdigest(), "bytes": len(body),
                               "rewrites": rewrites}
        lock["packages"][package] = {"version": version, "tarball": tarball,  # type: ignore[index]
                                     "integrity": pin["integrity"], "files": files}
    LOCK.write_text(json.dumps(lock, indent=2, sort_keys=True) + "\n")
    return lock


def check() -> list[str]:
    """Problems with the copies on disk (empty when every file matches the lock)."""
    lock = json.loads(LOCK.read_text())
    problems = []
    for package, entry in lock["packages"].items():
        if PINS.get(package, {}).get("version") != entry["version"]:
            problems.append(f"{package}: the lock pins {entry['version']}, the script {PINS.get(package, {}).get('version')}")
        for dest, meta in entry["files"].items():
            path = VENDOR / dest
            if not path.is_file():
                problems.append(f"{dest}: missing")
            elif hashlib.sha256(path.read_bytes()).hexdigest() != meta["sha256"]:
                problems.append(f"{dest}: differs from the pinned copy")
    return problems


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="verify the copies on disk against the lock, offline")
    ap.add_argument("--upgrade", action="store_true", help="pin the registry's latest versions first")
    args = ap.parse_args()
    if args.check:
        problems = check()
        for p in problems:
            print(p)
        print("vendor copies: " + ("OK" if not problems else f"{len(problems)} problem(s)"))
        return 1 if problems else 0
    pins = PINS
    if args.upgrade:
        for package, pin in pins.items():
            meta = json.loads(_fetch(f"{REGISTRY}/{package}/latest"))
            pin["version"], pin["integrity"] = meta["version"], meta["dist"]["integrity"]
            print(f"{package}: {meta['version']} (update PINS in this script to keep it)")
    lock = refresh(pins)
    for package, entry in lock["packages"].items():  # type: ignore[attr-defined]
        print(f"{package}@{entry['version']}: {len(entry['files'])} files")
    return 0


if __name__ == "__main__":
    sys.exit(main())
