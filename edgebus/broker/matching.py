"""MQTT topic-filter matching, including `$share/<group>/` shared subscriptions."""

from __future__ import annotations

from functools import lru_cache


def strip_share(pattern: str) -> str:
    """The plain filter inside a shared subscription (`$share/<group>/<filter>`)."""
    if pattern.startswith("$share/"):
        parts = pattern.split("/", 2)
        if len(parts) == 3:
            return parts[2]
    return pattern


def validate_filter(pattern: str) -> str:
    """Reject filters the broker would refuse, with a message naming the filter."""
    plain = strip_share(pattern)
    if not plain:
        raise ValueError("topic filter must not be empty")
    levels = plain.split("/")
    for index, level in enumerate(levels):
        if "#" in level and (level != "#" or index != len(levels) - 1):
            raise ValueError(f"topic filter {pattern!r}: '#' must be a whole, final level")
        if "+" in level and level != "+":
            raise ValueError(f"topic filter {pattern!r}: '+' must be a whole level")
    return pattern


@lru_cache(maxsize=4096)
def _levels(pattern: str) -> tuple[str, ...]:
    return tuple(strip_share(pattern).split("/"))


def topic_matches(pattern: str, topic: str) -> bool:
    """True when `topic` matches the filter `pattern` (MQTT 3.1.1 §4.7 rules)."""
    filter_levels = _levels(pattern)
    topic_levels = topic.split("/")
    # Wildcards at the first level never match topics starting with '$' (§4.7.2).
    if topic.startswith("$") and filter_levels[0] in ("+", "#"):
        return False
    for index, level in enumerate(filter_levels):
        if level == "#":
            return True
        if index >= len(topic_levels):
            return False
        if level != "+" and level != topic_levels[index]:
            return False
    return len(filter_levels) == len(topic_levels)
