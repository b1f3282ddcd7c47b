import pytest

from edgebus.broker.matching import topic_matches, validate_filter


@pytest.mark.parametrize(
    ("pattern", "topic", "expected"),
    [
        ("a/b", "a/b", True),
        ("a/+", "a/b", True),
        ("a/+", "a/b/c", False),
        ("a/#", "a", True),
        ("a/#", "a/b/c", True),
        ("#", "$SYS/x", False),
        ("+/x", "$share/x", False),
        ("$share/g/a/+", "a/b", True),
        ("edgebus/v1/+/frames/+/+/+", "edgebus/v1/lab/frames/c/1/end", True),
    ],
)
def test_topic_matches(pattern, topic, expected):
    assert topic_matches(pattern, topic) is expected


@pytest.mark.parametrize("bad", ["a/#/b", "a/b#", "a/b+", ""])
def test_invalid_filters(bad):
    with pytest.raises(ValueError):
        validate_filter(bad)
