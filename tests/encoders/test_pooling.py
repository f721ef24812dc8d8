import numpy as np
import pytest

from featx.config import LayerCombine, Pooling
from featx.pooling import combine_layers, normalize, pool

HIDDEN = np.array(
    [
        [[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]],  # 2 real tokens, 1 pad
        [[5.0, -1.0], [0.0, 0.0], [-7.0, 9.0]],  # 3 real tokens
        [[9.0, 9.0], [9.0, 9.0], [9.0, 9.0]],  # fully masked
    ],
    dtype=np.float32,
)
MASK = np.array([[1, 1, 0], [1, 1, 1], [0, 0, 0]])


def test_mean_ignores_padding_and_fully_masked_row_is_zero():
    out = pool(HIDDEN, MASK, Pooling.MEAN)
    np.testing.assert_allclose(out, [[2.0, 3.0], [-2 / 3, 8 / 3], [0.0, 0.0]], rtol=1e-6)
    assert out.dtype == np.float32


def test_weighted_mean_weights_later_tokens_more():
    out = pool(HIDDEN, MASK, Pooling.WEIGHTED_MEAN)
    np.testing.assert_allclose(out[0], [(1 + 2 * 3) / 3, (2 + 2 * 4) / 3], rtol=1e-6)
    np.testing.assert_allclose(out[1], [(5 + 0 - 21) / 6, (-1 + 0 + 27) / 6], rtol=1e-6)
    np.testing.assert_allclose(out[2], [0.0, 0.0])


def test_cls_takes_first_token():
    np.testing.assert_array_equal(pool(HIDDEN, MASK, Pooling.CLS), HIDDEN[:, 0])


def test_max_ignores_padding():
    out = pool(HIDDEN, MASK, Pooling.MAX)
    np.testing.assert_array_equal(out, [[3.0, 4.0], [5.0, 9.0], [0.0, 0.0]])


def test_last_takes_last_real_token_of_right_padded_rows():
    out = pool(HIDDEN, MASK, Pooling.LAST)
    np.testing.assert_array_equal(out, [[3.0, 4.0], [-7.0, 9.0], [9.0, 9.0]])


def test_pool_accepts_plain_strings():
    np.testing.assert_array_equal(pool(HIDDEN, MASK, "cls"), HIDDEN[:, 0])


def test_normalize_gives_unit_rows_and_keeps_zero_rows():
    out = normalize(np.array([[3.0, 4.0], [0.0, 0.0]], dtype=np.float32))
    np.testing.assert_allclose(out, [[0.6, 0.8], [0.0, 0.0]], rtol=1e-6)


@pytest.mark.parametrize(
    ("combine", "expected_width"), [(LayerCombine.MEAN, 2), (LayerCombine.CONCAT, 4)]
)
def test_combine_layers(combine, expected_width):
    other = HIDDEN * 3
    out = combine_layers([HIDDEN, other], combine)
    assert out.shape == (3, 3, expected_width)
    if combine is LayerCombine.MEAN:
        np.testing.assert_allclose(out, HIDDEN * 2)
    else:
        np.testing.assert_array_equal(out[..., 2:], other)
