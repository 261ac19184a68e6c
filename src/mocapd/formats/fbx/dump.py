"""Print a binary FBX file as indented text, for diffs: ``python -m mocapd.formats.fbx.dump FILE``.

Each node prints as ``Name: prop, prop, ...``; long arrays print their length, dtype and first values
(``--full`` prints them whole). The output is stable, so two dumps diff cleanly.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from mocapd.formats.fbx.decode import FbxFormatError, decode_fbx
from mocapd.formats.fbx.encode import FbxNode, Float32, Int16, Int64, PropValue

__all__ = ["dump_lines", "main"]

_PREVIEW_ITEMS = 8


def _format_prop(value: PropValue, full: bool) -> str:
    if isinstance(value, np.ndarray):
        items = value if full else value[:_PREVIEW_ITEMS]
        body = ", ".join(repr(x.item()) for x in items)
        more = "" if full or value.shape[0] <= _PREVIEW_ITEMS else ", ..."
        return f"{value.dtype.name}[{value.shape[0]}] {{{body}{more}}}"
    if isinstance(value, bool):
        return "T" if value else "F"
    if isinstance(value, Int64):
        return f"{int(value)}L"
    if isinstance(value, Int16):
        return f"{int(value)}Y"
    if isinstance(value, Float32):
        return f"{float(value)!r}f"
    if isinstance(value, str):
        return '"' + value.replace("\x00\x01", "::").encode("unicode_escape").decode("ascii") + '"'
    if isinstance(value, bytes):
        return "R:" + value.hex()
    return repr(value)


def dump_lines(nodes: list[FbxNode], *, full: bool = False, depth: int = 0) -> Iterator[str]:
    """Text lines for ``nodes``: two spaces of indent per level; names and ``::`` as the name/class separator."""
    for node in nodes:
        props = ", ".join(_format_prop(p, full) for p in node.props)
        yield "  " * depth + f"{node.name}:" + (f" {props}" if props else "")
        yield from dump_lines(node.children, full=full, depth=depth + 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mocapd.formats.fbx.dump", description=__doc__)
    parser.add_argument("file", type=Path, help="a binary FBX file")
    parser.add_argument("--full", action="store_true", help="print arrays whole")
    args = parser.parse_args(argv)
    try:
        version, nodes = decode_fbx(args.file.read_bytes())
    except (OSError, FbxFormatError) as exc:
        print(f"error: {args.file}: {exc}", file=sys.stderr)
        return 1
    try:
        print(f"; FBX {version} binary")
        for line in dump_lines(nodes, full=args.full):
            print(line)
        sys.stdout.flush()
    except BrokenPipeError:  # e.g. piped into `head`: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
