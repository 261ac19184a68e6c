"""Binary FBX 7.4 writer (our own encoder: no library writes binary FBX).

``encode`` / ``decode`` are the byte layer, ``scene`` turns a `Motion` into the node tree, ``dump``
prints a file as text (``python -m mocapd.formats.fbx.dump FILE``).
"""

from mocapd.formats.fbx.scene import write_fbx

__all__ = ["write_fbx"]
