"""What an edge decided about each frame, so a repeated question gets the same answer.

A camera that sees no outcome for a frame sends its end marker again (an `attempt`);
the edge must then answer with the outcome it already recorded, never decide the frame
a second time. The ledger holds, per frame (camera, incarnation, frame_id), the outcome
and its reason for `horizon_s`, and the frames now being decided. A restarted edge
reloads it from its own local store, so its answers survive the restart too.

It also bounds what an edge accepts. A frame first seen more than `accept_age_s` after
its capture is refused, not decided: the camera gives up on an answer after twice that
long and records the frame itself, so a late decision here would be a second record.
A frame id far ahead of the newest seen from the same camera run, or a capture time
far in this edge's future, is refused rather than allowed to push that camera's other
frames aside.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass

FrameKey = tuple[str, int, int]  # (camera, incarnation, frame_id)

# Frame ids a camera run may jump ahead of the newest seen from it: minutes of frames.
MAX_AHEAD = 10_000
# How far a frame's capture time may be ahead of the edge's clock: clock skew only.
MAX_SKEW_S = 60.0


@dataclass(frozen=True, slots=True)
class Decision:
    outcome: str  # messages.OUTCOME_RESULT or OUTCOME_DROPPED
    reason: str
    decided_ts: float


class FrameLedger:
    def __init__(
        self, accept_age_s: float = 15.0, horizon_s: float = 600.0, max_skew_s: float = MAX_SKEW_S
    ) -> None:
        self.accept_age_s = accept_age_s
        self.horizon_s = max(horizon_s, accept_age_s)
        self.max_skew_s = max_skew_s
        self._decided: OrderedDict[FrameKey, Decision] = OrderedDict()
        self._deciding: set[FrameKey] = set()
        self._newest: dict[tuple[str, int], int] = {}

    def __len__(self) -> int:
        return len(self._decided)

    def lookup(self, key: FrameKey) -> Decision | None:
        return self._decided.get(key)

    def is_deciding(self, key: FrameKey) -> bool:
        return key in self._deciding

    def screen(self, key: FrameKey, capture_ts: float, now_ts: float) -> str | None:
        """Why this edge refuses a frame with this key and capture time; None to accept."""
        camera, incarnation, frame_id = key
        if not math.isfinite(capture_ts):
            return f"capture time {capture_ts!r} is not a time"
        age = now_ts - capture_ts
        if age > self.accept_age_s:
            return f"captured {age:.1f} s ago, too late to decide (limit {self.accept_age_s:g} s)"
        if age < -self.max_skew_s:
            return f"captured {-age:.0f} s in the future of this edge's clock"
        newest = self._newest.get((camera, incarnation))
        if newest is not None and frame_id > newest + MAX_AHEAD:
            return f"frame id {frame_id} is more than {MAX_AHEAD} ahead of {newest}"
        return None

    def seen(self, key: FrameKey) -> None:
        """A message of this frame was accepted: it moves the camera run's newest id."""
        camera, incarnation, frame_id = key
        if frame_id > self._newest.get((camera, incarnation), -1):
            self._newest[(camera, incarnation)] = frame_id

    def begin(self, key: FrameKey) -> bool:
        """Start deciding a frame; False if it is decided or being decided already."""
        if key in self._decided or key in self._deciding:
            return False
        self._deciding.add(key)
        return True

    def decide(self, key: FrameKey, outcome: str, reason: str, now_ts: float) -> Decision:
        self._deciding.discard(key)
        decision = self._decided[key] = Decision(outcome, reason, now_ts)
        self._decided.move_to_end(key)
        self._forget_before(now_ts - self.horizon_s)
        return decision

    def abandon(self, key: FrameKey) -> None:
        """A frame whose deciding stopped half-way (the node is stopping)."""
        self._deciding.discard(key)

    def load(self, decisions: Iterable[tuple[FrameKey, Decision]]) -> int:
        """Decisions read back from the local store, oldest first; returns how many."""
        count = 0
        for key, decision in decisions:
            self._decided[key] = decision
            self._decided.move_to_end(key)
            self.seen(key)
            count += 1
        return count

    def _forget_before(self, cutoff_ts: float) -> None:
        while self._decided:
            key, oldest = next(iter(self._decided.items()))
            if oldest.decided_ts >= cutoff_ts:
                return
            del self._decided[key]
