"""Per-frame chunk assembly on the edge, keyed by (camera, incarnation, frame id).

A frame is finished by its end marker, by the arrival of every chunk the marker
announced, or by a grace timeout when the marker itself was lost. The marker may carry
the frame's last chunk itself (an unpaced camera's 64 px frame is that one message).
Once finished it is in the ledger (being decided, then decided): late or duplicate
chunks of it are dropped, so a result never uses data that arrived after its frame was
decided.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from edgebus.messages import EndOfFrame, FrameChunk
from edgebus.nodes.frame_ledger import FrameKey, FrameLedger


@dataclass(slots=True)
class PendingFrame:
    camera: str
    frame_id: int
    first_seen: float
    incarnation: int = 0
    codec: str = ""
    model_id: str = ""
    capture_ts: float = 0.0
    chunks: dict[int, bytes] = field(default_factory=dict)
    end: EndOfFrame | None = None

    @property
    def key(self) -> FrameKey:
        return (self.camera, self.incarnation, self.frame_id)

    @property
    def bytes_received(self) -> int:
        return sum(len(data) for data in self.chunks.values())

    def ordered_chunks(self) -> list[bytes]:
        """The contiguous prefix of chunks: a gap ends what the decoder may use."""
        prefix = []
        index = 0
        while index in self.chunks:
            prefix.append(self.chunks[index])
            index += 1
        return prefix


@dataclass(slots=True)
class AssemblerStats:
    late: int = 0
    duplicates: int = 0
    expired: int = 0


class FrameAssembler:
    def __init__(self, grace_s: float = 1.0, ledger: FrameLedger | None = None) -> None:
        self.grace_s = grace_s
        # Not `ledger or ...`: a ledger with nothing decided yet is empty, so falsy (it has
        # a length), and the edge's frames being decided would go to a private ledger the
        # edge never sees, and never leave it.
        self.ledger = ledger if ledger is not None else FrameLedger()
        self.stats = AssemblerStats()
        self._pending: dict[FrameKey, PendingFrame] = {}

    def __contains__(self, key: object) -> bool:
        """Whether parts of this frame are here, waiting for the rest."""
        return key in self._pending

    def _is_finished(self, key: FrameKey) -> bool:
        return self.ledger.is_deciding(key) or self.ledger.lookup(key) is not None

    def _frame(self, key: FrameKey, now: float) -> PendingFrame:
        frame = self._pending.get(key)
        if frame is None:
            camera, incarnation, frame_id = key
            frame = self._pending[key] = PendingFrame(camera, frame_id, now, incarnation)
        return frame

    def add_chunk(self, chunk: FrameChunk, now: float) -> list[PendingFrame]:
        """Store a chunk; returns the frames this chunk finished (none, usually)."""
        key = (chunk.camera, chunk.incarnation, chunk.frame_id)
        if self._is_finished(key):
            self.stats.late += 1
            return []
        frame = self._frame(key, now)
        if chunk.chunk_index in frame.chunks:
            self.stats.duplicates += 1
            return []
        frame.chunks[chunk.chunk_index] = chunk.data
        frame.codec, frame.model_id, frame.capture_ts = (
            chunk.codec,
            chunk.model_id,
            chunk.capture_ts,
        )
        if frame.end is not None and len(frame.chunks) >= frame.end.chunks_sent:
            return self._finish(frame)
        return []

    def end(self, marker: EndOfFrame, now: float) -> list[PendingFrame]:
        """Record an end marker; returns the frames it finished, oldest first."""
        key = (marker.camera, marker.incarnation, marker.frame_id)
        if self._is_finished(key):
            self.stats.late += 1
            return []
        frame = self._frame(key, now)
        frame.end = marker
        if marker.last_chunk and marker.chunks_sent > 0:
            # The frame's last chunk, carried in the marker; if a copy came on its own
            # too (a hostile or confused sender), the first to arrive stands.
            frame.chunks.setdefault(marker.chunks_sent - 1, marker.last_chunk)
        frame.codec, frame.model_id, frame.capture_ts = (
            marker.codec,
            marker.model_id,
            marker.capture_ts,
        )
        return self._finish(frame)

    def next_expiry(self) -> float | None:
        """When the oldest frame still assembling runs out of grace; None if there is none.
        A frame that starts later expires later, so nothing can come due before this."""
        if not self._pending:
            return None
        return min(f.first_seen for f in self._pending.values()) + self.grace_s

    def expire(self, now: float) -> list[PendingFrame]:
        """Finish frames whose end marker has not come within the grace period."""
        stale = [f for f in self._pending.values() if now - f.first_seen >= self.grace_s]
        finished: list[PendingFrame] = []
        for frame in sorted(stale, key=lambda f: f.frame_id):
            if frame.key in self._pending:
                self.stats.expired += 1
                finished += self._finish(frame)
        return finished

    def finish_all(self) -> list[PendingFrame]:
        """Every pending frame, decided from what it has (the edge is stopping)."""
        finished: list[PendingFrame] = []
        for frame in sorted(self._pending.values(), key=lambda f: f.frame_id):
            if frame.key in self._pending:
                finished += self._finish(frame)
        return finished

    def _finish(self, frame: PendingFrame) -> list[PendingFrame]:
        # A camera never interleaves frames, so once a newer frame is decided every older
        # pending one of the same run has lost its end marker: decide those first, from
        # what they have.
        older = sorted(
            (
                f
                for k, f in self._pending.items()
                if k[:2] == frame.key[:2] and k[2] < frame.frame_id
            ),
            key=lambda f: f.frame_id,
        )
        for done in [*older, frame]:
            self._pending.pop(done.key, None)
            self.ledger.begin(done.key)
        return [*older, frame]

    @property
    def pending(self) -> int:
        return len(self._pending)
