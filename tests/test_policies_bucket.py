import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgebus.policies.token_bucket import BucketParams, TokenBucket, TokenBuckets


@pytest.mark.parametrize(
    ("rate", "depth", "expected"),
    [(0.05, 4, (1, 20, 80)), (0.1, 4, (1, 10, 40)), (0.25, 4, (1, 4, 16)), (0.1, 1, (1, 10, 10))],
)
def test_from_rate_matches_the_paper_cases(rate, depth, expected):
    p = BucketParams.from_rate(rate, depth)
    assert (p.n, p.p, p.m) == expected


@given(st.floats(0.01, 5), st.floats(0, 20))
@settings(max_examples=60, deadline=None)
def test_from_rate_is_close_and_small(rate, extra):
    depth = max(1.0, rate) + extra
    p = BucketParams.from_rate(rate, depth)
    assert p.p <= 100
    assert abs(p.rate - rate) <= 1 / 100 and abs(p.depth - depth) <= 1 / 100 + 1e-9


@pytest.mark.parametrize(
    ("rate", "depth", "name"),
    [(0, 4, "rate r"), (-1, 4, "rate r"), (0.001, 4, "rate r"), (float("nan"), 4, "rate r"),
     (0.1, 0.5, "depth b"), (0.1, float("inf"), "depth b"), (3, 2, "depth b")],
)  # fmt: skip
def test_invalid_parameters_name_themselves(rate, depth, name):
    with pytest.raises(ValueError, match=name) as info:
        BucketParams.from_rate(rate, depth)
    assert "\n" not in str(info.value)


class FloatBucket:
    """Eq. 1 in floating point: n' = min(b, n - a + r*gap), an offload needs n >= 1."""

    def __init__(self, rate: float, depth: float) -> None:
        self.rate, self.depth, self.level = rate, depth, depth

    def step(self, offload: bool, gap: int) -> bool:
        sent = offload and self.level >= 1 - 1e-9
        self.level = min(self.depth, self.level - sent + self.rate * gap)
        return sent


@st.composite
def bucket_runs(draw):
    p = draw(st.integers(1, 30))
    n = draw(st.integers(1, 2 * p))
    m = draw(st.integers(max(p, n), 6 * p))
    steps = draw(st.integers(1, 200))
    wants = draw(st.lists(st.booleans(), min_size=steps, max_size=steps))
    gaps = draw(st.lists(st.integers(1, 4), min_size=steps, max_size=steps))
    return BucketParams(n, p, m), wants, gaps


@given(bucket_runs())
@settings(max_examples=80, deadline=None)
def test_integer_bucket_matches_float_reference_and_is_never_overdrawn(run):
    params, wants, gaps = run
    bucket, ref = TokenBucket(params), FloatBucket(params.n / params.p, params.m / params.p)
    for want, gap in zip(wants, gaps, strict=True):
        before = bucket.level
        sent = bucket.step(want, gap)
        assert sent == ref.step(want, gap)
        assert not sent or before >= params.p
        assert params.n <= bucket.level <= params.m
        assert abs(bucket.tokens - ref.level) < 1e-6


@given(bucket_runs(), st.integers(1, 5), st.integers(0, 2**31))
@settings(max_examples=40, deadline=None)
def test_vectorised_buckets_match_scalar_ones(run, streams, seed):
    params, _, _ = run
    rng = np.random.default_rng(seed)
    wants = rng.random((50, streams)) < 0.6
    gaps = rng.integers(1, 4, (50, streams))
    many = TokenBuckets(params, streams)
    ones = [TokenBucket(params) for _ in range(streams)]
    for t in range(50):
        sent = many.step(wants[t], gaps[t])
        rows = zip(ones, wants[t], gaps[t], strict=True)
        assert list(sent) == [b.step(bool(w), int(g)) for b, w, g in rows]
        assert list(many.level) == [b.level for b in ones]


def test_refused_offload_and_bad_gap():
    bucket = TokenBucket(BucketParams.from_rate(0.1, 1))
    assert bucket.step(True) and not bucket.can_offload
    assert not bucket.step(True)
    with pytest.raises(ValueError, match="gap"):
        bucket.step(False, 0)
