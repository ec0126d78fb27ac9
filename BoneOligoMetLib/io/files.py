"""Files: content hashes and fingerprints, and writes that never leave a half-written file."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Union

PathLike = Union[str, "os.PathLike[str]"]  # a path as a string or os.PathLike


def file_fingerprint(path: Union[str, Path]) -> list:
    """(path, size, mtime_ns) of a file, or of every file under a folder; ``missing`` if absent."""
    path = Path(path)
    if path.is_file():
        stat = path.stat()
        return [str(path), stat.st_size, stat.st_mtime_ns]
    if path.is_dir():
        entries = []
        for folder, _, names in sorted(os.walk(path)):
            for name in sorted(names):
                stat = os.stat(os.path.join(folder, name))
                entries.append([os.path.join(folder, name), stat.st_size, stat.st_mtime_ns])
        return [str(path), entries]
    return [str(path), "missing"]


def file_sha256(path: Union[str, Path]) -> str:
    """SHA-256 of a file's content (read in 1 MiB blocks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def atomic_write(path: Path, data: bytes, durable: bool = False) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one, even
    if this process dies meanwhile. ``durable``: on disk before the rename, so a machine crash
    cannot leave an empty file either (tables; a torn part reads as unfinished anyway)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # Named before it exists, so a Ctrl-C right after the create still removes it; the pid
    # says whose it is (remove_temporaries).
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(8)}.tmp")
    try:
        with open(temporary, "xb") as stream:
            stream.write(data)
            if durable:
                stream.flush()
                os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def remove_temporaries(folder: Union[str, Path], pids: Iterable[int]) -> int:
    """Remove the unfinished writes that processes ``pids``, now ended, left under ``folder``
    (killed mid-write); returns how many."""
    removed = 0
    for pid in pids:
        for temporary in Path(folder).glob(f"**/.*.{int(pid)}.*.tmp"):
            with contextlib.suppress(FileNotFoundError):
                temporary.unlink()
                removed += 1
    return removed


IMAGE_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd")


def _has_image_suffix(path: Path) -> bool:
    name = path.name.lower()
    return any(name.endswith(suffix) for suffix in IMAGE_SUFFIXES)


def json_default(value: Any) -> Any:
    """``json.dumps(..., default=json_default)``: NumPy scalars and arrays as plain numbers."""
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON: {type(value).__name__}")


def case_fingerprint(inputs: Iterable[str]) -> str:
    """SHA-256 of the fingerprints of a case's input files and folders."""
    text = json.dumps([file_fingerprint(p) for p in inputs])
    return hashlib.sha256(text.encode()).hexdigest()
