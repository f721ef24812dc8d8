import numpy as np
import pytest

from featx.batching import pad_batch, plan_batches


def test_batches_cover_every_row_once_sorted_and_within_budget():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 300, size=500)
    batches = plan_batches(lengths, batch_size=32, max_tokens=1024)
    rows = np.concatenate(batches)
    assert sorted(rows.tolist()) == list(range(500))
    for batch in batches:
        assert len(batch) <= 32
        assert len(batch) == 1 or len(batch) * lengths[batch].max() <= 1024
    longest_first = [lengths[b].max() for b in batches]
    assert longest_first == sorted(longest_first, reverse=True)


def test_row_longer_than_budget_gets_its_own_batch():
    batches = plan_batches([5000, 3, 3], batch_size=32, max_tokens=100)
    assert [b.tolist() for b in batches] == [[0], [1, 2]]


@pytest.mark.parametrize(
    "kwargs", [{"batch_size": 0, "max_tokens": 10}, {"batch_size": 1, "max_tokens": 0}]
)
def test_bad_budgets_are_rejected(kwargs):
    with pytest.raises(ValueError, match=">= 1"):
        plan_batches([1, 2], **kwargs)


def test_pad_batch_pads_right_with_pad_id():
    ids, mask = pad_batch([[5, 6, 7], [8]], pad_id=1)
    np.testing.assert_array_equal(ids, [[5, 6, 7], [8, 1, 1]])
    np.testing.assert_array_equal(mask, [[1, 1, 1], [1, 0, 0]])
    assert ids.dtype == np.int64 and mask.dtype == np.int64
