import random

import pytest

from edgebus.broker.backoff import Backoff


def test_delays_grow_within_bounds_and_jitter():
    backoff = Backoff(0.1, 2.0, rng=random.Random(1))
    ceilings, delays = [], []
    for _ in range(10):
        ceilings.append(backoff.ceiling())
        delays.append(backoff.next_delay())
    assert ceilings == sorted(ceilings)
    assert ceilings[-1] == 2.0
    assert all(0.1 <= d <= c for d, c in zip(delays, ceilings, strict=True))
    assert len({round(d, 6) for d in delays}) > 5  # jittered, not lock-step


def test_reset_starts_over():
    backoff = Backoff(0.5, 8.0, rng=random.Random(2))
    for _ in range(5):
        backoff.next_delay()
    backoff.reset()
    assert backoff.ceiling() == 0.5


def test_two_clients_do_not_retry_in_step():
    a, b = Backoff(0.2, 10, rng=random.Random(3)), Backoff(0.2, 10, rng=random.Random(4))
    assert [a.next_delay() for _ in range(5)] != [b.next_delay() for _ in range(5)]


@pytest.mark.parametrize(("low", "high"), [(0, 1), (2, 1), (-1, 1)])
def test_bad_bounds(low, high):
    with pytest.raises(ValueError):
        Backoff(low, high)
