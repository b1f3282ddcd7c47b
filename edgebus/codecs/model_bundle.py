"""A deployable model as named files, and the one checksum every node verifies before use.

The sha256 covers every file name and its bytes, in name order and length-prefixed, so no
two different bundles share a digest by re-cutting the same bytes across files.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Mapping


class BundleMismatch(ValueError):
    """A bundle whose bytes do not hash to the sha256 it was announced with."""


def bundle_digest(files: Mapping[str, bytes]) -> str:
    digest = hashlib.sha256()
    for name in sorted(files):
        encoded = name.encode()
        digest.update(struct.pack(">I", len(encoded)) + encoded)
        digest.update(struct.pack(">Q", len(files[name])) + files[name])
    return digest.hexdigest()


def verify_bundle(model_id: str, files: Mapping[str, bytes], expected_sha256: str) -> None:
    actual = bundle_digest(files)
    if actual != expected_sha256:
        raise BundleMismatch(
            f"model {model_id}: sha256 {actual[:16]}… does not match the announced "
            f"{expected_sha256[:16]}…"
        )
