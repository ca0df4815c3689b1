"""Generators of tiny dataset trees in the exact FMA / GTZAN / MagnaTagATune layouts and formats.

Every generator writes real audio files (WAV and AU as PCM_16, MP3 through soundfile's libmpg123/
LAME, no ffmpeg) and metadata files in the real formats, into a folder given by the caller (a
pytest tmp_path), and returns what a correct conversion must produce. The broken cases that the
converter has to survive (corrupt MP3, zero-byte file, text with an audio extension, too-short,
silent, stereo, other sample rates, duplicates, missing or escaping paths) are included and named
in the returned `expected_skipped` / `expected_flagged`.

Usage from any test (the repository root must be on sys.path; tests/data_tools/conftest.py
ensures that for these tests):

    from tests.data_tools import fixtures
    tree = fixtures.make_gtzan_tree(tmp_path)
"""

from __future__ import annotations

import csv
import dataclasses
import os
from collections.abc import Sequence

import numpy as np
import soundfile as sf

GTZAN_GENRES = ("blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop",
                "reggae", "rock")
REFERENCE_GTZAN_LISTS = os.path.join(os.path.dirname(__file__), "..", "..", "data_tools",
                                     "datasets", "splits", "gtzan")


@dataclasses.dataclass
class FixtureTree:
    """What a generator wrote and what converting it must give.

    Attributes:
      audio_dir: the dataset's audio root.
      metadata: metadata files by role ("tracks_csv", "annotations", "labels", "split_dir", ...).
      expected: track id -> (split, label vector, source rate, channels, seconds, frequency Hz).
      tag_names: expected label names in order.
      expected_skipped: relative paths that must be listed as skipped.
      expected_flagged: relative paths that must be flagged silent.
    """

    audio_dir: str
    metadata: dict
    expected: dict
    tag_names: list
    expected_skipped: list
    expected_flagged: list


def tone(seconds: float, rate: int, freq: float, channels: int = 1,
         amplitude: float = 0.3) -> np.ndarray:
    """A sine (per channel, the second channel at half amplitude) as float32 [frames, channels]."""
    t = np.arange(int(round(seconds * rate)), dtype=np.float64) / rate
    wave = amplitude * np.sin(2 * np.pi * freq * t)
    cols = [wave * (1.0 if c == 0 else 0.5) for c in range(channels)]
    return np.stack(cols, axis=1).astype(np.float32)


def write_audio(path: str, seconds: float, rate: int, freq: float = 440.0, channels: int = 1,
                amplitude: float = 0.3) -> str:
    """Writes a tone as WAV, AU (PCM_16), MP3, FLAC or OGG according to the file extension."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    ext = os.path.splitext(path)[1].lower()
    fmt, subtype = {".wav": ("WAV", "PCM_16"), ".au": ("AU", "PCM_16"), ".mp3": ("MP3", None),
                    ".flac": ("FLAC", "PCM_16"), ".ogg": ("OGG", "VORBIS")}[ext]
    sf.write(path, tone(seconds, rate, freq, channels, amplitude), rate, format=fmt,
             subtype=subtype)
    return path


def write_corrupt_mp3(path: str) -> str:
    """An MP3 whose frames after the first few hundred bytes are random garbage."""
    write_audio(path, 4.0, 16000, 330.0)
    with open(path, "rb") as f:
        head = f.read(600)
    size = os.path.getsize(path)
    with open(path, "wb") as f:
        f.write(head + np.random.default_rng(7).bytes(size - 600))
    return path


def write_corrupt_wav(path: str) -> str:
    """A .wav whose RIFF header is followed by garbage (like GTZAN's unreadable jazz.00054.wav)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(b"RIFF" + np.random.default_rng(11).bytes(4000))
    return path


def write_empty(path: str) -> str:
    """A zero-byte file."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    open(path, "wb").close()
    return path


def write_text(path: str) -> str:
    """A text file with an audio extension."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write("this is not audio\n" * 50)
    return path


def _freq(i: int) -> float:
    return 220.0 + 55.0 * i


# ---------------------------------------------------------------------------------------------
# GTZAN


def gtzan_reference_lists() -> dict[str, list[str]]:
    """The shipped fault-filtered lists: split -> paths."""
    out = {}
    for split in ("train", "valid", "test"):
        with open(os.path.join(REFERENCE_GTZAN_LISTS, f"{split}_filtered.txt")) as f:
            out[split] = [line.strip() for line in f if line.strip()]
    return out


def make_gtzan_tree(root: str, per_split: int = 2, seconds: float = 3.0,
                    broken: bool = True) -> FixtureTree:
    """GTZAN `genres/<genre>/<genre>.000NN.wav` with files for some entries of the real lists.

    Writes `per_split` entries spread over each real split list (22,050 Hz mono WAV, one as the
    original `.au` format), plus one unlisted file per genre (dropped by the filtered split).
    With `broken`: `jazz/jazz.00054.wav` (in the real train list) is a corrupt file, one listed
    track is all-silent, one is 1 s long, and one is 44.1 kHz stereo.
    """
    audio_dir = os.path.join(root, "genres")
    lists = gtzan_reference_lists()
    expected, skipped, flagged = {}, [], []
    i = 0
    for split, entries in lists.items():
        # Entries spread over each list, so that several genres occur.
        for relative in [entries[j * (len(entries) // per_split)] for j in range(per_split)]:
            genre = relative.split("/")[0]
            track_id = os.path.splitext(os.path.basename(relative))[0]
            rate, channels, secs, amp = 22050, 1, seconds, 0.3
            path = os.path.join(audio_dir, relative)
            if i == 1:
                path = os.path.splitext(path)[0] + ".au"  # the original GTZAN release is AU
            if broken and i == 2:
                rate, channels = 44100, 2
            if broken and i == 3:
                amp = 0.0
                flagged.append(relative)
            if broken and i == 4:
                secs = 1.0
                skipped.append(relative)
            write_audio(path, secs, rate, _freq(i), channels, amp)
            if not (broken and i == 4):
                one_hot = [1.0 if g == genre else 0.0 for g in GTZAN_GENRES]
                expected[track_id] = (split, one_hot, rate, channels, secs, _freq(i))
            i += 1
    for genre in GTZAN_GENRES:  # every genre folder exists, with one file outside the lists
        write_audio(os.path.join(audio_dir, genre, f"{genre}.00099x.wav"), 3.0, 22050, 500.0)
    if broken:
        write_corrupt_wav(os.path.join(audio_dir, "jazz", "jazz.00054.wav"))
        skipped.append("jazz/jazz.00054.wav")
    return FixtureTree(audio_dir, {}, expected, list(GTZAN_GENRES), skipped, flagged)


def write_gtzan_split_dir(path: str, lists: dict[str, Sequence[str]]) -> str:
    """Writes `{train,valid,test}_filtered.txt` lists in the fault-filtered format."""
    os.makedirs(path, exist_ok=True)
    for split, entries in lists.items():
        with open(os.path.join(path, f"{split}_filtered.txt"), "w") as f:
            f.writelines(f"{e}\n" for e in entries)
    return path


# ---------------------------------------------------------------------------------------------
# MagnaTagATune

PONS_TOP50 = (
    "guitar", "classical", "slow", "techno", "strings", "drums", "electronic", "rock", "fast",
    "piano", "ambient", "beat", "violin", "vocal", "synth", "female", "indian", "opera", "male",
    "singing", "vocals", "no vocals", "harpsichord", "loud", "quiet", "flute", "woman",
    "male vocal", "no vocal", "pop", "soft", "sitar", "solo", "man", "classic", "choir", "voice",
    "new age", "dance", "male voice", "female vocal", "beats", "harp", "cello", "no voice", "weird",
    "country", "metal", "female voice", "choral")
MTAT_BROKEN = {
    35644: "6/norine_braun-now_and_zen-08-gently-117-146.mp3",
    55753: "8/jacob_heringman-josquin_des_prez_lute_settings-19-gintzler__pater_noster-204-233.mp3",
    57881: "9/american_baroque-dances_and_suites_of_rameau_and_couperin-25-le_petit_rien_xiveme_"
           "ordre_couperin-88-117.mp3",
}


def mtat_tag_columns(num_tags: int = 188) -> list[str]:
    """188 tag names: the Pons top-50 plus fillers, in a column order unlike the Pons order."""
    fillers = [f"extra tag {j:03d}" for j in range(num_tags - len(PONS_TOP50))]
    names = list(PONS_TOP50) + fillers
    return [names[(k * 37) % num_tags] for k in range(num_tags)]  # 37 is coprime to 188


def mtat_tag_values(row: int, num_tagged: int, tags: Sequence[str]) -> list[int]:
    """0/1 tags of a synthetic row: Pons tag i is on for rows < num_tagged - 2i (so the Pons
    order is also the frequency order); fillers are rarer; rows >= num_tagged have no top-50 tag."""
    values = []
    for name in tags:
        if name in PONS_TOP50:
            values.append(int(row < num_tagged - 2 * PONS_TOP50.index(name)))
        else:
            j = int(name.split()[-1])
            values.append(int(num_tagged <= row < num_tagged + (j % 20)))
    return values


def write_mtat_annotations(path: str, rows: Sequence[tuple[int, Sequence[int], str]],
                           tags: Sequence[str]) -> str:
    """annotations_final.csv: tab-separated, every field double-quoted, as distributed."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f, delimiter="\t", quotechar='"', quoting=csv.QUOTE_ALL,
                            lineterminator="\n")
        writer.writerow(["clip_id", *tags, "mp3_path"])
        for clip_id, values, mp3_path in rows:
            writer.writerow([clip_id, *values, mp3_path])
    return path


def pons_scale_rows(tags: Sequence[str]) -> list[tuple[int, list[int], str]]:
    """25,863 annotation rows with the real per-folder counts (18,709 in 0-b incl. the 3 broken
    clips, 1,825 in c, 5,329 in d-f), for checking the split arithmetic without audio."""
    counts = {"c": 1825}
    train_folders = "0123456789ab"
    for k, d in enumerate(train_folders):
        counts[d] = 18709 // 12 + (1 if k < 18709 % 12 else 0)
    for k, d in enumerate("def"):
        counts[d] = 5329 // 3 + (1 if k < 5329 % 3 else 0)
    broken_by_folder = {p.split("/")[0]: (cid, p) for cid, p in MTAT_BROKEN.items()}
    zero = [0] * len(tags)
    rows, clip_id = [], 0
    for folder in "0123456789abcdef":
        n = counts[folder]
        if folder in broken_by_folder:
            cid, p = broken_by_folder[folder]
            rows.append((cid, zero, p))
            n -= 1
        for k in range(n):
            clip_id += 1
            while clip_id in MTAT_BROKEN:
                clip_id += 1
            rows.append((clip_id, zero, f"{folder}/artist_{clip_id:05d}-album-{k:02d}-0-29.mp3"))
    return rows


def make_mtat_tree(root: str, num_rows: int = 160, num_tagged: int = 120,
                   seconds: float = 3.0, broken: bool = True) -> FixtureTree:
    """MTAT `mp3/<hex digit>/<name>.mp3` (16 kHz mono MP3) + annotations_final.csv.

    `num_rows` annotation rows over folders 0-f, with audio for a few of them (train, valid,
    test, an untagged clip); the other rows have no audio and must be listed as skipped. With
    `broken`: the 3 known-broken clip ids (one a zero-byte file), a corrupt MP3, a text file named
    .mp3 and a path escaping the audio root.
    """
    audio_dir = os.path.join(root, "mp3")
    tags = mtat_tag_columns()
    rows = []
    for r in range(num_rows):
        folder = "0123456789abcdef"[r % 16]
        rows.append((r * 3 + 2, mtat_tag_values(r, num_tagged, tags),
                     f"{folder}/artist_{r:04d}-album-01-track_{r}-0-29.mp3"))
    expected, skipped = {}, []
    # Rows with audio: train folders 0 and 1, valid c, test d and f; row 124 (folder c) has no
    # top-50 tag and must be kept.
    with_audio = [0, 1, 12, 13, 15, 17, 124]
    split_of = {d: ("train" if int(d, 16) < 12 else "valid" if d == "c" else "test")
                for d in "0123456789abcdef"}
    for k, r in enumerate(with_audio):
        clip_id, values, rel = rows[r]
        write_audio(os.path.join(audio_dir, rel), seconds, 16000, _freq(k))
        labels = [float(values[tags.index(t)]) for t in PONS_TOP50]
        expected[str(clip_id)] = (split_of[rel[0]], labels, 16000, 1, seconds, _freq(k))
    skipped += [rows[r][2] for r in range(num_rows) if r not in with_audio]
    if broken:
        zero = [0] * len(tags)
        for cid, rel in MTAT_BROKEN.items():
            rows.append((cid, zero, rel))
            skipped.append(rel)
        write_empty(os.path.join(audio_dir, MTAT_BROKEN[35644]))
        for name, writer in (("corrupt", write_corrupt_mp3), ("text", write_text)):
            rel = f"2/{name}_clip-0-29.mp3"
            writer(os.path.join(audio_dir, rel))
            rows.append((90000 + len(rows), zero, rel))
            skipped.append(rel)
        rows.append((99999, zero, "../../outside.mp3"))
        skipped.append("../../outside.mp3")
    annotations = write_mtat_annotations(os.path.join(root, "annotations_final.csv"), rows, tags)
    return FixtureTree(audio_dir, {"annotations": annotations}, expected, list(PONS_TOP50),
                       skipped, [])


# ---------------------------------------------------------------------------------------------
# FMA

FMA_GENRES = {21: ("Hip-Hop", 0, 21), 12: ("Rock", 0, 12), 15: ("Electronic", 0, 15),
              38: ("Experimental", 0, 38), 25: ("Punk", 12, 12), 236: ("IDM", 15, 15)}
# A few real tracks.csv column pairs (the real file has 52 columns), in the real group order.
FMA_COLUMNS = [("album", "comments"), ("album", "title"), ("artist", "name"), ("set", "split"),
               ("set", "subset"), ("track", "duration"), ("track", "genre_top"),
               ("track", "genres"), ("track", "genres_all"), ("track", "title")]


def write_tracks_csv(path: str, rows: Sequence[dict], columns=FMA_COLUMNS,
                     header_rows: int = 2) -> str:
    """tracks.csv as in fma_metadata.zip: two header rows, then a `track_id` row, then tracks."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["", *[c[0] for c in columns]])
        if header_rows == 2:
            writer.writerow(["", *[c[1] for c in columns]])
            writer.writerow(["track_id", *[""] * len(columns)])
        for row in rows:
            writer.writerow([row["track_id"], *[row.get(c, "") for c in columns]])
    return path


def write_genres_csv(path: str) -> str:
    """genres.csv: genre_id,#tracks,parent,title,top_level."""
    with open(path, "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["genre_id", "#tracks", "parent", "title", "top_level"])
        for gid, (title, parent, top) in sorted(FMA_GENRES.items()):
            writer.writerow([gid, 100, parent, title, top])
    return path


def make_fma_tree(root: str, seconds: float = 3.0, broken: bool = True,
                  subset: str = "medium") -> FixtureTree:
    """fma_<subset>/<3 digits>/<6 digits>.mp3 (44.1 kHz stereo MP3) + fma_metadata/tracks.csv.

    Tracks of the small, medium and large subsets over the three official splits; the expected
    result is for `subset` (cumulative) with `--label top_genre`. With `broken`: a track listed
    twice, one without an audio file (like 099134), a zero-byte file, a corrupt MP3, a 1 s clip,
    a 48 kHz mono and a 16 kHz one, and a silent clip.
    """
    audio_dir = os.path.join(root, f"fma_{subset}")
    order = ("small", "medium", "large")
    plan = [  # track_id, split, subset, genre_top, genres_all, kind
        (2, "training", "small", "Hip-Hop", [21], "ok"),
        (5, "training", "small", "Hip-Hop", [21], "ok"),
        (10, "validation", "medium", "Rock", [12, 25], "ok"),
        (140, "test", "medium", "Electronic", [15, 236, 38], "ok"),
        (1482, "training", "medium", "Rock", [12], "rate48k"),
        (2001, "training", "large", "Rock", [12], "ok"),
    ]
    if broken:
        plan += [
            (1486, "training", "medium", "Electronic", [15], "short"),
            (99134, "training", "medium", "Rock", [12], "missing"),
            (108925, "validation", "medium", "Hip-Hop", [21], "empty"),
            (133297, "test", "medium", "Rock", [12], "corrupt"),
            (3000, "test", "medium", "Electronic", [15], "rate16k"),
            (3001, "training", "medium", "Hip-Hop", [21], "silent"),
        ]
    selected = [p for p in plan if order.index(p[2]) <= order.index(subset)]
    tag_names = sorted({p[3] for p in selected})
    split_name = {"training": "train", "validation": "valid", "test": "test"}
    expected, skipped, flagged, rows = {}, [], [], []
    for k, (tid, split, sub, top, genres_all, kind) in enumerate(plan):
        rel = f"{tid:06d}"[:3] + f"/{tid:06d}.mp3"
        path = os.path.join(audio_dir, rel)
        rate, channels, secs, amp = 44100, 2, seconds, 0.3
        if kind == "rate48k":
            rate, channels = 48000, 1
        if kind == "rate16k":
            rate, channels = 16000, 1
        if kind == "short":
            secs = 1.0
        if kind == "silent":
            amp = 0.0
        in_subset = order.index(sub) <= order.index(subset)
        if kind == "missing":
            pass
        elif kind == "empty":
            write_empty(path)
        elif kind == "corrupt":
            write_corrupt_mp3(path)
        elif in_subset:
            write_audio(path, secs, rate, _freq(k), channels, amp)
        rows.append({"track_id": tid, ("set", "split"): split, ("set", "subset"): sub,
                     ("track", "genre_top"): top, ("track", "genres_all"): str(genres_all),
                     ("track", "genres"): str(genres_all[:1]),
                     ("track", "duration"): 312 if tid == 140 else 30,
                     ("album", "comments"): 'a "quoted", multi-line\ncomment',
                     ("track", "title"): f"Track, {tid}", ("artist", "name"): "Artist"})
        if not in_subset:
            continue
        if kind in ("short", "missing", "empty", "corrupt"):
            skipped.append(rel)
            continue
        if kind == "silent":
            flagged.append(rel)
        expected[f"{tid:06d}"] = (split_name[split], [1.0 if t == top else 0.0 for t in tag_names],
                                  rate, channels, secs, _freq(k))
    if broken:  # track 5 listed a second time
        rows.append(dict(rows[1]))
        skipped.append(f"000/{5:06d}.mp3")
    meta = os.path.join(root, "fma_metadata")
    tracks_csv = write_tracks_csv(os.path.join(meta, "tracks.csv"), rows)
    genres_csv = write_genres_csv(os.path.join(meta, "genres.csv"))
    return FixtureTree(audio_dir, {"tracks_csv": tracks_csv, "genres_csv": genres_csv}, expected,
                       tag_names, skipped, flagged)


# ---------------------------------------------------------------------------------------------
# Any folder


def make_folder_tree(root: str, seconds: float = 3.0,
                     labels: dict[str, Sequence[str]] | None = None) -> FixtureTree:
    """A user's folder of mixed formats (wav, mp3, flac, ogg, au; nested folders; stereo, 48 kHz),
    with a labels.csv when `labels` (relative path -> tags) is given."""
    audio_dir = os.path.join(root, "my_music")
    files = [("a/one.wav", 22050, 1), ("a/two.mp3", 44100, 2), ("b/three.flac", 48000, 1),
             ("b/c/four.ogg", 32000, 2), ("five.au", 16000, 1)]
    expected = {}
    tag_names = sorted({t for tags in (labels or {}).values() for t in tags})
    for k, (rel, rate, channels) in enumerate(files):
        write_audio(os.path.join(audio_dir, rel), seconds, rate, _freq(k), channels)
        vec = [1.0 if t in (labels or {}).get(rel, ()) else 0.0 for t in tag_names]
        expected[os.path.splitext(rel)[0]] = ("train", vec, rate, channels, seconds, _freq(k))
    metadata = {}
    if labels is not None:
        path = os.path.join(root, "labels.csv")
        with open(path, "w", newline="") as f:
            writer = csv.writer(f, lineterminator="\n")
            writer.writerow(["path", "labels"])
            for rel, tags in labels.items():
                writer.writerow([rel, ";".join(tags)])
        metadata["labels"] = path
    return FixtureTree(audio_dir, metadata, expected, tag_names, [], [])


def upload_tree(local_dir: str) -> str:
    """Copies a local tree to a fresh folder of TensorFlow's in-memory ram:// filesystem (the
    stand-in for a gs:// bucket, reached through the same tf.io.gfile calls); returns its URL."""
    import uuid

    import tensorflow as tf
    remote = f"ram://bucket-{uuid.uuid4().hex[:8]}/{os.path.basename(local_dir)}"
    for root, _, files in os.walk(local_dir):
        for name in files:
            rel = os.path.relpath(os.path.join(root, name), local_dir).replace(os.sep, "/")
            target = f"{remote}/{rel}"
            tf.io.gfile.makedirs(target.rsplit("/", 1)[0])
            tf.io.gfile.copy(os.path.join(root, name), target, overwrite=True)
    return remote


def shard_bytes(out_dir: str) -> dict[str, bytes]:
    """The bytes of every shard of a local conversion output, by file name."""
    from mssl_tf.data import features
    return {n: open(os.path.join(out_dir, n), "rb").read() for n in sorted(os.listdir(out_dir))
            if features.SHARD_RE.match(n)}
