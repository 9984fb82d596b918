import numpy as np
import pytest

from leadingterms.errors import LeadingTermsError
from leadingterms.training.data import DataOrder


@pytest.mark.parametrize("N,B,K", [(10, 3, 1), (12, 2, 3), (7, 7, 1), (9, 4, 2), (5, 2, 5)])
def test_each_epoch_visits_every_sequence_once(N, B, K):
    order = DataOrder(N, B, K, seed=3)
    spe = order.steps_per_epoch
    assert spe == -(-N // min(B * K, N))
    for epoch in range(3):
        rows = [order.step_batches(epoch * spe + j) for j in range(spe)]
        flat = np.concatenate([np.concatenate(r) for r in rows])
        assert sorted(flat.tolist()) == list(range(N))
        for micro in rows:
            assert all(1 <= len(m) <= B for m in micro) and len(micro) <= K


def test_order_is_deterministic_and_seeded():
    a, b, c = DataOrder(20, 4, 1, 0), DataOrder(20, 4, 1, 0), DataOrder(20, 4, 1, 1)
    assert all(np.array_equal(a.step_batches(s)[0], b.step_batches(s)[0]) for s in range(12))
    assert any(not np.array_equal(a.step_batches(s)[0], c.step_batches(s)[0]) for s in range(5))
    # epochs differ from each other (fresh permutation per epoch)
    assert not np.array_equal(a.permutation(0), a.permutation(1))


def test_state_is_epoch_and_position():
    order = DataOrder(10, 3, 1, 0)  # 4 steps per epoch, the last one has 1 sequence
    assert order.state(0) == {"epoch": 0, "position": 0}
    assert order.state(3) == {"epoch": 0, "position": 9}
    assert order.state(5) == {"epoch": 1, "position": 3}
    assert [len(order.step_batches(s)[0]) for s in range(4)] == [3, 3, 3, 1]
    assert order.epoch_float(6) == 1.5


def test_full_batch_is_every_row_in_order():
    order = DataOrder(6, 6, 1, 5)
    for s in range(3):
        (rows,) = order.step_batches(s)
        assert rows.tolist() == list(range(6))


def test_batch_larger_than_corpus_refused():
    with pytest.raises(LeadingTermsError, match="exceeds the 5 training sequences"):
        DataOrder(5, 6, 1, 0)
