"""File access for the whole package: local paths through `os`, URLs (gs://) through tf.io.gfile.

Every artifact the package writes (run.json, results.json, manifests, probe heads, weights,
gin files, figures) goes through the atomic writers here: the content lands under a temporary
name and is renamed into place when complete, so a crash never leaves a half-written file where
a reader or a resume looks. Local paths never import TensorFlow, so the conversion's decode
workers and the command lines' `--help` stay light; a path with a URL scheme (gs://, s3://,
ram:// in tests) goes through `tf.io.gfile`, imported when such a path is first met.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import os
import posixpath
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from typing import IO, Any

from mssl_tf import constants


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


def exists(path: str) -> bool:
    """True when a file or folder exists at `path`."""
    return _gfile().exists(path) if is_remote(path) else os.path.exists(path)


def makedirs(path: str) -> None:
    """Creates a folder and its parents (no error when it exists)."""
    if is_remote(path):
        _gfile().makedirs(path)
    else:
        os.makedirs(path, exist_ok=True)


def glob(pattern: str) -> list[str]:
    """Sorted paths matching a glob pattern (local or remote)."""
    if is_remote(pattern):
        return sorted(_gfile().glob(pattern))
    import glob as glob_lib  # noqa: PLC0415  (the name `glob` is this function)
    return sorted(glob_lib.glob(pattern))


def remove(path: str) -> None:
    """Deletes a file; a missing file is not an error."""
    try:
        if is_remote(path):
            _gfile().remove(path)
        else:
            os.remove(path)
    except FileNotFoundError:
        pass
    except Exception as e:  # noqa: BLE001  tf.errors.NotFoundError without importing TF here
        if type(e).__name__ != "NotFoundError":
            raise


def rmtree(path: str) -> None:
    """Deletes a folder and everything under it; a missing folder is not an error."""
    if not exists(path):
        return
    if is_remote(path):
        _gfile().rmtree(path)
    else:
        shutil.rmtree(path)


def read_text(path: str) -> str:
    """The whole content of a UTF-8 text file (FileNotFoundError when missing)."""
    return read_bytes(path).decode("utf-8")


def _temporary_name(path: str) -> str:
    folder, name = os.path.split(path) if not is_remote(path) else posixpath.split(path)
    return join(folder, f".{name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")


def write_bytes(path: str, data: bytes) -> None:
    """Writes `data` to `path` atomically, creating the folder.

    Locally the bytes go to a temporary file in the same folder, are flushed to disk and renamed
    over `path` (`os.replace` is atomic on POSIX). On object stores (gs://) the object appears
    only when its upload completes; it is written under a temporary name and renamed, too.
    """
    folder = dirname(path)
    if folder:
        makedirs(folder)
    tmp = _temporary_name(path)
    try:
        if is_remote(path):
            with _gfile().GFile(tmp, "wb") as f:
                f.write(data)
            _gfile().rename(tmp, path, overwrite=True)
        else:
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
    except BaseException:
        remove(tmp)
        raise


def write_text(path: str, text: str) -> None:
    """Writes UTF-8 text atomically (see `write_bytes`)."""
    write_bytes(path, text.encode("utf-8"))


def _strict(obj: Any) -> Any:
    """NaN and infinities become None, so the file is standard JSON that any tool reads."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _strict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_strict(v) for v in obj]
    return obj


def write_json(path: str, obj: Any, *, indent: int = 2, sort_keys: bool = True,
               default: Callable[[Any], Any] | None = None) -> None:
    """Writes `obj` as standard JSON (non-finite floats as null), atomically.

    Args:
      path: destination (local or remote).
      obj: JSON-able data.
      indent / sort_keys: layout, as in `json.dumps`.
      default: converts objects JSON cannot hold (e.g. numpy scalars), as in `json.dumps`.
    """
    text = json.dumps(_strict(obj), indent=indent, sort_keys=sort_keys, allow_nan=False,
                      default=default)
    write_text(path, text + "\n")


def read_json(path: str) -> Any:
    """Reads a JSON file (local or remote).

    Raises:
      FileNotFoundError: no such file.
      ValueError: the file is not valid JSON (e.g. truncated); the message names the file.
    """
    text = read_text(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON ({e}); it may be truncated or "
                         "hand-edited.") from None


def sha256_file(path: str) -> str:
    """sha256 hex digest of a local or remote file, read in 8 MB blocks."""
    digest = hashlib.sha256()
    opener = _gfile().GFile(path, "rb") if is_remote(path) else open(path, "rb")
    with opener as f:
        while True:
            block = f.read(8 * 2**20)
            if not block:
                break
            digest.update(block)
    return digest.hexdigest()


@contextlib.contextmanager
def local_copy(path: str) -> Iterator[str]:
    """A local path holding `path`'s content: the file itself, or a temporary download."""
    if not is_remote(path):
        if not os.path.exists(path):
            raise FileNotFoundError(f"{path}: no such file")
        yield path
        return
    with tempfile.TemporaryDirectory() as tmp_dir:
        local = os.path.join(tmp_dir, basename(path))
        with open(local, "wb") as f:
            f.write(read_bytes(path))
        yield local


@contextlib.contextmanager
def atomic_output(path: str) -> Iterator[str]:
    """A local temporary file path to write; on success it replaces `path` atomically.

    For writers that need a file name (h5py, numpy, matplotlib): write the temporary path
    inside the `with` block; nothing appears at `path` if the block raises.
    """
    suffix = "".join(os.path.splitext(basename(path))[1:]) or ""
    with tempfile.TemporaryDirectory() as tmp_dir:
        # Keep the file's own name (and so its extension: Keras checks `.weights.h5`).
        local = os.path.join(tmp_dir, basename(path) or f"out{suffix}")
        yield local
        if is_remote(path):
            with open(local, "rb") as f:
                write_bytes(path, f.read())
        else:
            folder = dirname(path)
            if folder:
                makedirs(folder)
            tmp = _temporary_name(path)
            try:
                shutil.copyfile(local, tmp)
                with open(tmp, "rb+") as f:
                    os.fsync(f.fileno())
                os.replace(tmp, path)
            except BaseException:
                remove(tmp)
                raise


def validate_manifest(manifest: Any, path: str = constants.MANIFEST_NAME) -> None:
    """Raises ValueError naming `path` unless it is a manifest of this schema version."""
    if not isinstance(manifest, dict):
        raise ValueError(f"{path} is not an mssl-prepare manifest (a JSON object is expected); "
                         "re-run `mssl-prepare`.")
    version = manifest.get("schema_version")
    if version != constants.SCHEMA_VERSION:
        raise ValueError(
            f"{path}: schema_version {version!r}, this mssl_tf reads {constants.SCHEMA_VERSION}. "
            "Re-run `mssl-prepare` with this version to rewrite the shards.")


def read_manifest(data_dir: str) -> dict:
    """Reads and checks `data_dir/manifest.json`, written by `mssl-prepare`.

    Raises:
      FileNotFoundError: no manifest, with the command that writes one.
      ValueError: not valid JSON, or shards of another schema version.
    """
    path = join(data_dir, constants.MANIFEST_NAME)
    try:
        manifest = read_json(path)
    except FileNotFoundError:
        raise FileNotFoundError(
            f"{path} not found: {data_dir} is not an output folder of `mssl-prepare`. Name "
            "the folder given to its --out (e.g. DIR of `mssl-prepare gtzan --audio_dir genres "
            "--out DIR`), or rerun mssl-prepare there to finish an interrupted conversion."
        ) from None
    validate_manifest(manifest, path)
    return manifest
