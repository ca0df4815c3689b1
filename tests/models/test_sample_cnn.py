"""SampleCNN: CLMR's layer list, parameter count, shapes and bad crop lengths."""

import numpy as np
import pytest

from mssl_tf.models import build_sample_cnn, check_crop_len, reduced_length


def _trainable(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def test_parameter_count_matches_clmr():
    # anchors 1.1: conv + BN affine of SampleCNN(strides=[3]*9) = 2,368,512.
    assert _trainable(build_sample_cnn(512)) == 2_368_512


def test_layer_list_matches_clmr():
    model = build_sample_cnn(512)
    convs = [layer for layer in model.layers if layer.__class__.__name__ == "Conv1D"]
    assert [c.filters for c in convs] == [128, 128, 128, 256, 256, 256, 256, 256, 256, 512, 512]
    assert [c.strides[0] for c in convs] == [3] + [1] * 10
    assert [c.padding for c in convs] == ["valid"] + ["same"] * 10
    assert all(c.kernel_size == (3,) and c.use_bias for c in convs)
    bns = [layer for layer in model.layers if layer.__class__.__name__ == "BatchNormalization"]
    assert len(bns) == 11
    assert all(b.momentum == 0.9 and b.epsilon == 1e-5 for b in bns)
    pools = [layer for layer in model.layers if layer.__class__.__name__ == "MaxPooling1D"]
    assert len(pools) == 9 and all(p.pool_size == (3,) and p.strides == (3,) for p in pools)


@pytest.mark.parametrize("rep_dim", [32, 128, 512])
def test_output_shape_and_dtype(rep_dim):
    model = build_sample_cnn(rep_dim)
    x = np.random.default_rng(0).uniform(-1, 1, (2, 59049)).astype("float32")
    y = np.asarray(model(x, training=False))
    assert y.shape == (2, rep_dim) and y.dtype == np.float32
    assert np.all(y >= 0)  # final ReLU


def test_lengths_reduce_to_one():
    assert reduced_length(59049) == 1
    assert reduced_length(3 ** 10 * 2 - 1) == 1
    assert reduced_length(3 ** 10 * 2) == 2
    assert reduced_length(729, num_blocks=5) == 1


@pytest.mark.parametrize("bad", [16000, 59048, 118098, 22050 * 6])
def test_bad_crop_len_is_explained(bad):
    with pytest.raises(ValueError, match="does not reduce to length 1.*59049"):
        check_crop_len(bad)
    with pytest.raises(ValueError, match=f"crop_len={bad}"):
        build_sample_cnn(crop_len=bad)


def test_small_demo_encoder():
    model = build_sample_cnn(32, crop_len=729, widths=(16, 16, 32, 32, 32))
    assert model.output_shape == (None, 32)
