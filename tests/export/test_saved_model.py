"""SavedModel export: reloaded signatures against Keras and numpy, TFSMLayer, .keras, bad input."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from mssl_tf import rundir
from mssl_tf.export import ExportedModel, export_encoder, export_run, load_probe
from mssl_tf.models import build_probe_head, build_sample_cnn
from tests.export.helpers import TINY, make_run, set_nontrivial_bn_statistics

CROP = TINY["crop_len"]
TAGS = ["bass", "drums", "piano"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A tiny encoder + linear head exported once for the module: (dir, encoder, head)."""
    keras.utils.set_random_seed(7)
    encoder = build_sample_cnn(TINY["rep_dim"], CROP, widths=tuple(TINY["widths"]))
    set_nontrivial_bn_statistics(encoder)
    head = build_probe_head("linear", TINY["rep_dim"], len(TAGS))
    out = str(tmp_path_factory.mktemp("export"))
    export_encoder(encoder, out, head=head, tag_names=TAGS, multi_label=True)
    return out, encoder, head


def _numpy_chunks(track, crop):
    """The test protocol in plain numpy: ceil(len / crop) chunks, the last one dropped."""
    n = -(-len(track) // crop) - 1
    return track[:n * crop].reshape(n, crop)


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-np.asarray(x, np.float64)))


def test_layout_and_signatures(exported):
    out, encoder, _ = exported
    assert sorted(os.listdir(out)) == ["encoder.keras", "export.json", "probe_head.keras",
                                       "saved_model"]
    with open(os.path.join(out, "export.json")) as f:
        info = json.load(f)
    assert info["crop_len"] == CROP and info["rep_dim"] == 8 and info["sample_rate"] == 22050
    assert info["signatures"] == ["embed", "embed_track", "embed_chunks", "tag", "tag_chunks"]
    assert info["tag_names"] == TAGS
    loaded = tf.saved_model.load(os.path.join(out, "saved_model"))
    assert set(loaded.signatures) == {"embed", "embed_track", "embed_chunks", "tag", "tag_chunks",
                                      "serving_default"}
    # What TF Serving's metadata shows: named inputs with the exact shapes and dtypes.
    inputs = loaded.signatures["embed"].structured_input_signature[1]
    assert inputs["waveform"].shape.as_list() == [None, CROP]
    assert inputs["waveform"].dtype == tf.float32
    track_in = loaded.signatures["embed_track"].structured_input_signature[1]["waveform"]
    assert track_in.shape.as_list() == [None]
    outputs = loaded.signatures["tag"].structured_outputs
    assert outputs["probabilities"].shape.as_list() == [3]
    assert outputs["tag_names"].dtype == tf.string
    serving = loaded.signatures["serving_default"].structured_input_signature[1]["waveform"]
    assert serving.shape.as_list() == [None, CROP]


def test_embed_matches_keras_with_bn_in_inference(exported):
    out, encoder, _ = exported
    x = np.random.default_rng(0).uniform(-1, 1, (5, CROP)).astype(np.float32)
    want = encoder(x, training=False).numpy()
    assert np.abs(want).max() > 1e-3  # a real signal, not an all-zero ReLU output
    loaded = tf.saved_model.load(os.path.join(out, "saved_model"))
    np.testing.assert_allclose(loaded.embed(x)["embedding"].numpy(), want, atol=1e-5)
    sig = loaded.signatures["embed"](waveform=tf.constant(x))["embedding"].numpy()
    np.testing.assert_allclose(sig, want, atol=1e-5)
    np.testing.assert_allclose(loaded.embed(x[:1])["embedding"].numpy(), want[:1], atol=1e-5)
    # Training-mode BN would normalise by the batch statistics instead: a different output
    # (checked on a copy, since a training-mode call also moves the moving statistics).
    copy = keras.models.clone_model(encoder)
    copy.set_weights(encoder.get_weights())
    assert np.abs(copy(x, training=True).numpy() - want).max() > 1e-3


@pytest.mark.parametrize("length", [CROP * 4 + 1000, CROP * 3, CROP + 1, CROP * 20 + 5])
def test_embed_track_is_the_mean_over_protocol_chunks(exported, length):
    out, encoder, _ = exported
    track = np.random.default_rng(length).uniform(-0.8, 0.8, length).astype(np.float32)
    chunks = _numpy_chunks(track, CROP)
    want = encoder(chunks, training=False).numpy().mean(axis=0)
    loaded = tf.saved_model.load(os.path.join(out, "saved_model"))
    got = loaded.embed_track(track)
    assert int(got["num_chunks"]) == len(chunks)  # 20 chunks span two CHUNK_BATCH batches
    np.testing.assert_allclose(got["embedding"].numpy(), want, atol=1e-5)


def test_track_of_exactly_one_chunk_is_embedded_as_that_chunk(exported):
    out, encoder, _ = exported
    track = np.random.default_rng(3).uniform(-1, 1, CROP).astype(np.float32)
    loaded = tf.saved_model.load(os.path.join(out, "saved_model"))
    got = loaded.embed_track(track)
    assert int(got["num_chunks"]) == 1
    np.testing.assert_allclose(got["embedding"].numpy(), encoder(track[None]).numpy()[0],
                               atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("length", [CROP, CROP * 2, CROP * 4 + 17])
def test_chunk_signatures_give_every_protocol_chunk(exported, length):
    out, encoder, head = exported
    model = ExportedModel(out)
    track = np.random.default_rng(length).uniform(-1, 1, length).astype(np.float32)
    chunks = _numpy_chunks(track, CROP) if length > CROP else track[None, :CROP]
    emb, offsets = model.embed_chunks(track)
    np.testing.assert_array_equal(offsets, np.arange(len(chunks)) * CROP)
    np.testing.assert_allclose(emb, encoder(chunks, training=False).numpy(), atol=1e-5)
    np.testing.assert_allclose(emb.mean(0), model.embed_track(track), atol=1e-6)
    probs, offsets2 = model.tag_chunks(track)
    np.testing.assert_array_equal(offsets2, offsets)
    np.testing.assert_allclose(probs, _sigmoid(head(encoder(chunks, training=False)).numpy()),
                               atol=1e-5)
    np.testing.assert_allclose(probs.mean(0), [model.tag(track)[t] for t in TAGS], atol=1e-6)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_every_signature_refuses_nan_and_inf_audio(exported, bad):
    out, _, _ = exported
    loaded = tf.saved_model.load(os.path.join(out, "saved_model"))
    track = np.random.default_rng(5).uniform(-1, 1, CROP * 3).astype(np.float32)
    track[CROP + 11] = bad  # one sample is enough (it moved an embedding by 0.61 before)
    clips = track[:2 * CROP].reshape(2, CROP)
    calls = {"embed": clips, "embed_track": track, "embed_chunks": track, "tag": track,
             "tag_chunks": track}
    for name, x in calls.items():
        with pytest.raises(tf.errors.InvalidArgumentError, match="NaN or Inf samples"):
            loaded.signatures[name](waveform=tf.constant(x))
        with pytest.raises(tf.errors.InvalidArgumentError, match="nan_to_num"):
            getattr(loaded, name)(tf.constant(x))  # the tf.function path too
    with pytest.raises(tf.errors.InvalidArgumentError, match="NaN or Inf samples"):
        loaded.signatures["serving_default"](waveform=tf.constant(clips))
    model = ExportedModel(out)
    for name, x in calls.items():
        with pytest.raises(ValueError, match=r"1 NaN or Inf sample\(s\).*nan_to_num"):
            getattr(model, name)(x)
    # Finite audio still goes through.
    assert np.isfinite(model.embed_track(np.nan_to_num(track))).all()


def test_tag_is_the_mean_of_chunk_probabilities_not_of_logits(exported, tmp_path):
    _, encoder, _ = exported
    rng = np.random.default_rng(11)
    head = build_probe_head("linear", TINY["rep_dim"], len(TAGS))
    head.get_layer("logits").kernel.assign(rng.normal(0, 100, (8, 3)).astype(np.float32))
    # Loud and quiet chunks, so the chunks' logits differ widely.
    gains = np.repeat([1.0, 0.02, 0.6, 0.05, 0.9, 0.01, 1.0], CROP)[:CROP * 6 + 17]
    track = (rng.uniform(-1, 1, CROP * 6 + 17) * gains).astype(np.float32)
    logits = head(encoder(_numpy_chunks(track, CROP), training=False)).numpy()
    want = _sigmoid(logits).mean(axis=0)
    out2 = str(tmp_path / "tag")
    export_encoder(encoder, out2, head=head, tag_names=TAGS)
    loaded = tf.saved_model.load(os.path.join(out2, "saved_model"))  # kept: it owns the variables
    got = loaded.tag(track)
    np.testing.assert_allclose(got["probabilities"].numpy(), want, atol=1e-5)
    assert [t.decode() for t in got["tag_names"].numpy()] == TAGS
    assert np.abs(want - _sigmoid(logits.mean(axis=0))).max() > 1e-3  # the two differ here


@pytest.mark.slow
def test_single_label_probe_uses_softmax(exported, tmp_path):
    _, encoder, _ = exported
    head = build_probe_head("mlp", 8, 4, hidden=6)
    out = str(tmp_path / "softmax")
    export_encoder(encoder, out, head=head, tag_names=list("abcd"), multi_label=False)
    track = np.random.default_rng(5).uniform(-1, 1, CROP * 3 + 5).astype(np.float32)
    logits = head(encoder(_numpy_chunks(track, CROP))).numpy().astype(np.float64)
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    want = (e / e.sum(axis=1, keepdims=True)).mean(axis=0)
    loaded = tf.saved_model.load(os.path.join(out, "saved_model"))
    got = loaded.tag(track)["probabilities"]
    np.testing.assert_allclose(got.numpy(), want, atol=1e-5)
    assert got.numpy().sum() == pytest.approx(1.0, abs=1e-5)


def test_tfsm_layer_and_keras_file_reload(exported):
    out, encoder, head = exported
    x = np.random.default_rng(1).uniform(-1, 1, (3, CROP)).astype(np.float32)
    want = encoder(x, training=False).numpy()
    layer = keras.layers.TFSMLayer(os.path.join(out, "saved_model"), call_endpoint="embed")
    np.testing.assert_allclose(layer(x)["embedding"].numpy(), want, atol=1e-5)
    # As a layer of a new Keras model, e.g. a downstream classifier on frozen embeddings.
    inputs = keras.Input((CROP,))
    model = keras.Model(inputs, keras.layers.Dense(2)(layer(inputs)["embedding"]))
    assert model(x).shape == (3, 2)
    track_layer = keras.layers.TFSMLayer(os.path.join(out, "saved_model"),
                                         call_endpoint="embed_track")
    track = np.random.default_rng(2).uniform(-1, 1, CROP * 3).astype(np.float32)
    np.testing.assert_allclose(track_layer(track)["embedding"].numpy(),
                               encoder(_numpy_chunks(track, CROP)).numpy().mean(0), atol=1e-5)
    reloaded = keras.models.load_model(os.path.join(out, "encoder.keras"))
    np.testing.assert_allclose(reloaded(x, training=False).numpy(), want, atol=1e-6)
    reloaded_head = keras.models.load_model(os.path.join(out, "probe_head.keras"))
    np.testing.assert_allclose(reloaded_head(want).numpy(), head(want).numpy(), atol=1e-6)


def test_wrong_shape_or_dtype_gets_a_clear_error(exported):
    out, _, _ = exported
    loaded = tf.saved_model.load(os.path.join(out, "saved_model"))
    with pytest.raises(TypeError, match=rf"\(None, {CROP}\)"):
        loaded.embed(np.zeros((2, 1000), np.float32))
    with pytest.raises(tf.errors.InvalidArgumentError, match="expected to be a float tensor but "
                       "is a double tensor"):
        loaded.signatures["embed"](waveform=tf.zeros((2, CROP), tf.float64))
    with pytest.raises(tf.errors.InvalidArgumentError, match="shorter than one chunk of 2187"):
        loaded.embed_track(np.zeros(1000, np.float32))
    with pytest.raises(TypeError, match="shape=\\(None,\\)"):
        loaded.embed_track(np.zeros((2, CROP * 2), np.float32))

    model = ExportedModel(out)
    with pytest.raises(TypeError, match=r"float32.*astype\(np.float32\)"):
        model.embed(np.zeros((2, CROP), np.float64))
    with pytest.raises(ValueError, match=f"exactly {CROP} samples, got 1000"):
        model.embed(np.zeros((2, 1000), np.float32))
    with pytest.raises(ValueError, match="mix stereo to mono"):
        model.embed_track(np.zeros((CROP * 2, 2), np.float32))
    with pytest.raises(ValueError, match=f"at least {CROP} samples"):
        model.tag(np.zeros(10, np.float32))
    track = np.random.default_rng(4).uniform(-1, 1, CROP * 3).astype(np.float32)
    probs = model.tag(track)
    assert list(probs) == TAGS and all(0.0 < p < 1.0 for p in probs.values())
    assert model.embed_track(track).shape == (8,)


def test_export_refuses_to_overwrite_unless_asked(exported):
    out, encoder, _ = exported
    before = os.path.getmtime(os.path.join(out, "saved_model", "saved_model.pb"))
    with pytest.raises(FileExistsError, match="--overwrite"):
        export_encoder(encoder, out)
    assert os.path.getmtime(os.path.join(out, "saved_model", "saved_model.pb")) == before


@pytest.mark.slow
def test_export_run_with_its_probe(probed_run, tmp_path):
    run_dir, probe_dir, _ = probed_run
    out = str(tmp_path / "exp")
    info = export_run(run_dir, out, probe_dir=probe_dir)
    with open(os.path.join(probe_dir, "results.json")) as f:
        results = json.load(f)
    assert info["tag_names"] == results["tag_names"] and "tag" in info["signatures"]
    assert info["source"]["epoch"] == 2 and info["probe"]["metrics"] == results["metrics"]
    head, _ = load_probe(probe_dir, 8)
    encoder, _ = rundir.load_encoder(run_dir, "latest")
    track = np.random.default_rng(9).uniform(-1, 1, CROP * 5).astype(np.float32)
    want = _sigmoid(head(encoder(_numpy_chunks(track, CROP))).numpy()).mean(0)
    got = ExportedModel(out).tag(track)
    np.testing.assert_allclose([got[t] for t in results["tag_names"]], want, atol=1e-5)


@pytest.mark.slow
def test_export_run_bad_input(probed_run, tmp_path):
    run_dir, probe_dir, shards = probed_run
    with pytest.raises(FileNotFoundError, match="not a pre-training run"):
        export_run(str(tmp_path), str(tmp_path / "o1"))
    with pytest.raises(FileNotFoundError, match="not a probe folder"):
        export_run(run_dir, str(tmp_path / "o2"), probe_dir=str(tmp_path))
    # The probe was trained on the latest (epoch 2) features: exporting epoch 1 with it is refused.
    with pytest.raises(ValueError, match="Pass the probe's --checkpoint"):
        export_run(run_dir, str(tmp_path / "o3"), checkpoint=1, probe_dir=probe_dir)
    # A run of another width cannot carry this probe.
    wide = make_run(str(tmp_path / "wide"), shards, spec={**TINY, "rep_dim": 16})
    with pytest.raises(ValueError, match="trained on 8-d features"):
        export_run(wide, str(tmp_path / "o4"), probe_dir=probe_dir)
    assert not os.path.exists(tmp_path / "o3") and not os.path.exists(tmp_path / "o4")


@pytest.mark.slow
def test_export_refuses_a_probe_of_another_run(probed_run, tmp_path):
    """Issue 11.3: a head probed on run A exported on run B (same file names, same epoch)."""
    import shutil
    run_dir, probe_dir, shards = probed_run
    other = make_run(str(tmp_path / "clmr"), shards, seed=10)  # same layout, other weights
    with pytest.raises(ValueError) as err:
        export_run(other, str(tmp_path / "o1"), probe_dir=probe_dir)
    msg = str(err.value)
    assert run_dir in msg and other in msg and "weights differ" in msg
    assert "mssl-probe --model_dir" in msg and "Pass the probe's --checkpoint" in msg
    assert not os.path.exists(tmp_path / "o1")
    # A results.json written before the weights hash was recorded: the run itself is compared.
    old_probe = str(tmp_path / "old_probe")
    shutil.copytree(probe_dir, old_probe)
    with open(os.path.join(old_probe, "results.json")) as f:
        results = json.load(f)
    assert len(results["checkpoint"]["sha256"]) == 64
    del results["checkpoint"]["sha256"]
    with open(os.path.join(old_probe, "results.json"), "w") as f:
        json.dump(results, f)
    with pytest.raises(ValueError, match=rf"another run than the exported .*{other}"):
        export_run(other, str(tmp_path / "o2"), probe_dir=old_probe)
    export_run(run_dir, str(tmp_path / "o3"), probe_dir=old_probe)  # its own run: accepted
    # A run moved after probing keeps its probes: same weights, accepted.
    moved = str(tmp_path / "moved")
    shutil.copytree(run_dir, moved)
    moved_probe = os.path.join(moved, os.path.relpath(probe_dir, run_dir))
    info = export_run(moved, str(tmp_path / "o4"), probe_dir=moved_probe)
    assert info["signatures"][-2:] == ["tag", "tag_chunks"]


@pytest.mark.slow
def test_full_size_sample_cnn_export(tmp_path):
    encoder = build_sample_cnn()  # CLMR's SampleCNN: 59,049 samples -> 512
    out = str(tmp_path / "full")
    export_encoder(encoder, out)
    loaded = tf.saved_model.load(os.path.join(out, "saved_model"))
    spec = loaded.signatures["embed"].structured_input_signature[1]["waveform"]
    assert spec.shape.as_list() == [None, 59049]
    x = np.random.default_rng(0).uniform(-1, 1, (2, 59049)).astype(np.float32)
    np.testing.assert_allclose(loaded.embed(x)["embedding"].numpy(), encoder(x).numpy(),
                               atol=1e-4)
    track = np.random.default_rng(1).uniform(-1, 1, 641_655).astype(np.float32)  # 29.1 s
    assert int(loaded.embed_track(track)["num_chunks"]) == 10
