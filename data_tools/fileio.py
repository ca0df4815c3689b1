"""File access for the conversion tools: local paths, or URLs such as gs:// (tf.io.gfile).

Local paths go through `os` and `open`, so the decode workers of a local conversion never import
TensorFlow (they stay at tens of MB). A path with a URL scheme (gs://, s3://, ram:// in tests)
goes through `tf.io.gfile`, imported only when such a path is met: a Beam/Dataflow conversion can
then read its audio and metadata straight from a bucket.
"""

from __future__ import annotations

import io
import os
import posixpath
from collections.abc import Iterator
from typing import IO


def is_remote(path: str) -> bool:
    """True for a URL (`scheme://...`), False for a local path."""
    return "://" in path


def _tf():
    import tensorflow as tf  # noqa: PLC0415  (only for remote paths)
    return tf


def _gfile():
    return _tf().io.gfile


def join(root: str, *parts: str) -> str:
    """`os.path.join` for local paths, '/'-joined for URLs."""
    return posixpath.join(root, *parts) if is_remote(root) else os.path.join(root, *parts)


def dirname(path: str) -> str:
    """`os.path.dirname` for local paths, the '/'-parent for URLs."""
    return posixpath.dirname(path) if is_remote(path) else os.path.dirname(path)


def basename(path: str) -> str:
    """The last component of a local path or URL (for messages)."""
    return posixpath.basename(path.replace(os.sep, "/").rstrip("/"))


def isfile(path: str) -> bool:
    """True when `path` is an existing file (not a folder)."""
    if is_remote(path):
        gfile = _gfile()
        return gfile.exists(path) and not gfile.isdir(path)
    return os.path.isfile(path)


def isdir(path: str) -> bool:
    """True when `path` is an existing folder."""
    return _gfile().isdir(path) if is_remote(path) else os.path.isdir(path)


def listdir(path: str) -> list[str]:
    """Names in a folder (files and sub-folders, without a trailing '/')."""
    if is_remote(path):
        return [name.rstrip("/") for name in _gfile().listdir(path)]
    return os.listdir(path)


def walk(top: str) -> Iterator[tuple[str, list[str], list[str]]]:
    """`os.walk(top)` (top-down; prune by editing the yielded folder list in place)."""
    return _gfile().walk(top) if is_remote(top) else os.walk(top)


def relative_to(path: str, root: str) -> str:
    """`path` relative to the folder `root`, with '/' separators."""
    if is_remote(root):
        prefix = root.rstrip("/") + "/"
        if not path.startswith(prefix):
            raise ValueError(f"{path} is not under {root}")
        return path[len(prefix):]
    return os.path.relpath(path, root).replace(os.sep, "/")


def open_text(path: str) -> IO[str]:
    """A UTF-8 text file opened for reading, with newlines untranslated (as `csv` wants)."""
    if is_remote(path):
        return io.StringIO(read_bytes(path).decode("utf-8"), newline="")
    return open(path, newline="", encoding="utf-8")


def read_bytes(path: str) -> bytes:
    """The whole content of a file.

    Raises:
      FileNotFoundError: for a missing file, local or remote (tf.io.gfile would raise its own
        NotFoundError, which the command line does not expect).
    """
    if is_remote(path):
        try:
            with _gfile().GFile(path, "rb") as f:
                return f.read()
        except _tf().errors.NotFoundError:
            raise FileNotFoundError(f"{path}: no such file") from None
    with open(path, "rb") as f:
        return f.read()


def getsize(path: str) -> int:
    """Size of a file in bytes."""
    return _gfile().stat(path).length if is_remote(path) else os.path.getsize(path)


def absolute(path: str) -> str:
    """An absolute local path, or the URL unchanged (for records in the manifest)."""
    return path if is_remote(path) else os.path.abspath(path)


def resolve_under(root: str, relative: str) -> str | None:
    """Joins `relative` to `root`; None when the result would leave `root`.

    Absolute paths, `..` components and (locally) symlinks pointing outside are all rejected,
    so a metadata file cannot make the converter read arbitrary files.
    """
    if not relative or os.path.isabs(relative) or is_remote(relative):
        return None
    if is_remote(root):
        base = root.rstrip("/")
        candidate = posixpath.normpath(posixpath.join("/", relative.replace("\\", "/")))
        normal = posixpath.normpath(relative.replace("\\", "/"))
        if candidate == "/" or normal == ".." or normal.startswith("../"):
            return None
        return base + candidate
    root_real = os.path.realpath(root)
    candidate = os.path.realpath(os.path.join(root_real, relative))
    if candidate != root_real and candidate.startswith(root_real + os.sep):
        return candidate
    return None
