"""Which files `mssl-embed` embeds: folders (recursive), list files, globs, single files."""

from __future__ import annotations

import glob as glob_lib
from collections.abc import Sequence

from mssl_tf import fileio

# The extensions the data tools decode (data_tools.audio_io.AUDIO_EXTENSIONS), matched
# case-insensitively; repeated here so listing files imports no decoder.
AUDIO_EXTENSIONS = (".wav", ".mp3", ".flac", ".ogg", ".au")
# A file with one of these extensions is read as a list of audio paths, one per line.
LIST_EXTENSIONS = (".txt", ".lst", ".list", ".m3u")


def is_audio(path: str) -> bool:
    """True when `path` has an audio extension the data tools decode."""
    return path.lower().endswith(AUDIO_EXTENSIONS)


def _read_list(list_path: str) -> list[str]:
    """Paths in a list file; blank lines and '#' comments skipped, relative paths taken from
    the list file's folder."""
    folder = fileio.dirname(list_path)
    paths = []
    for line in fileio.read_text(list_path).splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if not fileio.is_remote(line) and not line.startswith("/") and folder:
            line = fileio.join(folder, line)
        paths.append(line)
    return paths


def _walk_audio(folder: str) -> list[str]:
    found = []
    for root, dirs, files in fileio.walk(folder):
        dirs.sort()
        found.extend(fileio.join(root, name) for name in sorted(files) if is_audio(name))
    return found


def list_audio(inputs: Sequence[str]) -> list[str]:
    """The audio files named by `inputs`, in a stable order, without duplicates.

    Args:
      inputs: folders (searched recursively for .wav/.mp3/.flac/.ogg/.au), list files
        (.txt/.lst/.list/.m3u: one path per line), glob patterns, or audio files; local or
        gs://.

    Returns:
      Paths as given or found (a list file's entries are used as listed, even when they do
      not exist: their decoding fails and is reported per file).

    Raises:
      FileNotFoundError: an input names nothing (the message names it).
      ValueError: no input names any audio file.
    """
    paths: list[str] = []
    for item in inputs:
        if fileio.isdir(item):
            found = _walk_audio(item)
            if not found:
                raise ValueError(f"{item!r} holds no audio file ({', '.join(AUDIO_EXTENSIONS)}); "
                                 "pass the folder of your audio, a list file or files.")
        elif item.lower().endswith(LIST_EXTENSIONS) and fileio.isfile(item):
            found = _read_list(item)
        elif glob_lib.has_magic(item):
            found = [p for p in fileio.glob(item) if is_audio(p)]
        elif fileio.exists(item):
            found = [item]
        else:
            raise FileNotFoundError(f"{item!r}: no such file or folder; pass audio files, a "
                                    "folder of them, or a list file (one path per line).")
        paths.extend(found)
    unique = list(dict.fromkeys(paths))
    if not unique:
        raise ValueError(f"No audio file found in {', '.join(inputs)}.")
    return unique
