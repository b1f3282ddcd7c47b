"""Uplink emulation: pace a camera's sends to a bandwidth trace.

The broker runs on loopback, so without pacing every frame would arrive whole. A
`LinkEmulator` models one serial uplink: a send occupies the link from when it starts
(or when the previous send ends) until the trace has carried its bytes.

Presets are calibrated for the shipped 64 px PNC model, charging every MQTT PUBLISH packet
in full (topic, envelope, end marker). A full frame is 1.13 KB of features; one unit per
chunk it is about 2.0 KB on the wire (1.6 KB in 256-byte blocks). At T = 500 ms:

- none (6,000 B/s, 3,000 B per period): every frame fits whole;
- light (2,400 B/s, 1,200 B): no frame fits whole, about half of the features do;
- heavy (1,500 B/s, 750 B): one or two features; at T = 300 ms (450 B) the first feature
  and the end marker still fit, as the paper's heavy jamming leaves room for a feature or two.
"""

from __future__ import annotations

import asyncio
import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgebus.clock import Clock, RealClock

# Bytes per second of application payload, per scenario of the paper's testbed.
PRESET_RATES = {"none": 6_000.0, "light": 2_400.0, "heavy": 1_500.0}
# The presets at this factor for Fashion-MNIST's 28 px frames (`none:0.7`, ...): a PNC
# frame is ten units of 19-43 B but ~180 B each on the wire with its chunk's topic and
# headers (about 1.9 kB a frame with its end marker; a 28 px WebP is one chunk of
# 200-400 B). At 0.7 "none" carries a whole PNC frame per 500 ms, "light" about four
# units and "heavy" two (one at 300 ms), as the presets do for 64 px frames.
FASHION_LINK_SCALE = 0.7
SWITCH_EVERY_S = 10.0
CONTINUATION_SLACK_S = 0.02


class TraceError(ValueError):
    """A bandwidth trace that cannot be used; the message is one line."""


@dataclass(frozen=True)
class BandwidthTrace:
    """A piecewise-constant rate: `rates[i]` bytes/s from `starts[i]` seconds on.

    With `cycle_s` the trace repeats with that period; otherwise the last rate holds.
    """

    starts: np.ndarray
    rates: np.ndarray
    cycle_s: float | None = None
    name: str = "trace"

    def __post_init__(self) -> None:
        starts, rates = np.asarray(self.starts, float), np.asarray(self.rates, float)
        if starts.ndim != 1 or starts.shape != rates.shape or len(starts) == 0:
            raise TraceError(f"{self.name}: needs matching, non-empty start and rate lists")
        if starts[0] != 0 or np.any(np.diff(starts) <= 0):
            raise TraceError(f"{self.name}: segment starts must begin at 0 and increase")
        if np.any(rates < 0) or not np.all(np.isfinite(rates)):
            raise TraceError(f"{self.name}: rates must be finite and non-negative")
        if self.cycle_s is not None and self.cycle_s <= starts[-1]:
            raise TraceError(f"{self.name}: the cycle must be longer than the last start")
        if self.cycle_s is None and rates[-1] == 0:
            raise TraceError(f"{self.name}: the final rate must be positive, or nothing ends")
        if self.cycle_s is not None and not np.any(rates > 0):
            raise TraceError(f"{self.name}: a cyclic trace needs some positive rate")
        object.__setattr__(self, "starts", starts)
        object.__setattr__(self, "rates", rates)

    # -- constructors ----------------------------------------------------------------

    @classmethod
    def constant(cls, rate: float, name: str = "constant") -> BandwidthTrace:
        if not rate > 0:
            raise TraceError(f"{name}: rate must be positive, got {rate!r}")
        return cls(np.array([0.0]), np.array([float(rate)]), name=name)

    @classmethod
    def preset(cls, scenario: str) -> BandwidthTrace:
        """`none`, `light`, `heavy`, `switching` (none/heavy every 10 s) or `stepped`
        (none, light, heavy for 10 s each, then heavy: the paper's Fig. 9)."""
        if scenario in PRESET_RATES:
            return cls.constant(PRESET_RATES[scenario], name=scenario)
        if scenario == "switching":
            return cls(
                np.array([0.0, SWITCH_EVERY_S]),
                np.array([PRESET_RATES["none"], PRESET_RATES["heavy"]]),
                cycle_s=2 * SWITCH_EVERY_S,
                name=scenario,
            )
        if scenario == "stepped":
            return cls(
                np.array([0.0, SWITCH_EVERY_S, 2 * SWITCH_EVERY_S]),
                np.array([PRESET_RATES[k] for k in ("none", "light", "heavy")]),
                name=scenario,
            )
        known = ", ".join([*PRESET_RATES, "switching", "stepped"])
        raise TraceError(f"unknown link scenario {scenario!r}; expected one of {known}")

    @classmethod
    def from_csv(cls, path: Path) -> BandwidthTrace:
        """Rows of `time_s,bytes_per_s` (a header row is allowed); the first time must be 0."""
        try:
            with path.open(newline="") as handle:
                rows = [row for row in csv.reader(handle) if row and row[0].strip()]
        except OSError as exc:
            raise TraceError(f"trace file {str(path)!r} cannot be read: {exc.strerror}") from None
        if rows and not _is_number(rows[0][0]):
            rows = rows[1:]
        try:
            times = [float(row[0]) for row in rows]
            rates = [float(row[1]) for row in rows]
        except (ValueError, IndexError):
            raise TraceError(
                f"trace file {str(path)!r}: expected rows of time_s,bytes_per_s"
            ) from None
        return cls(np.array(times), np.array(rates), name=path.name)

    def scaled(self, factor: float, name: str) -> BandwidthTrace:
        """Every rate times `factor`, the timing unchanged."""
        return BandwidthTrace(self.starts, self.rates * factor, self.cycle_s, name)

    def capped(self, cap: float) -> BandwidthTrace:
        """The same trace with every rate limited to `cap` bytes/s (a bandwidth allocation)."""
        if not cap > 0:
            raise TraceError(f"{self.name}: a rate cap must be positive, got {cap!r}")
        return BandwidthTrace(
            self.starts, np.minimum(self.rates, cap), self.cycle_s, f"{self.name} ≤ {cap:g} B/s"
        )

    def mean_rate(self) -> float:
        """Bytes/s averaged over one cycle (or over the segments of an acyclic trace)."""
        if self.cycle_s is not None:
            return self._cycle_bytes() / self.cycle_s
        return float(self.rates.mean())

    # -- arithmetic ------------------------------------------------------------------

    def _cycle_bytes(self) -> float:
        assert self.cycle_s is not None
        ends = np.append(self.starts[1:], self.cycle_s)
        return float(np.sum(self.rates * (ends - self.starts)))

    def rate_at(self, t: float) -> float:
        if self.cycle_s is not None:
            t = t % self.cycle_s
        return float(self.rates[np.searchsorted(self.starts, t, side="right") - 1])

    def bytes_until(self, t: float) -> float:
        """Bytes the link carries from time 0 to time t."""
        if t <= 0:
            return 0.0
        whole = 0.0
        if self.cycle_s is not None:
            cycles, t = divmod(t, self.cycle_s)
            whole = cycles * self._cycle_bytes()
        index = int(np.searchsorted(self.starts, t, side="right") - 1)
        widths = np.diff(self.starts[: index + 1])
        done = float(np.sum(self.rates[:index] * widths))
        return whole + done + float(self.rates[index]) * (t - self.starts[index])

    def time_to_carry(self, start: float, nbytes: float) -> float:
        """The earliest time by which `nbytes` sent from `start` have crossed the link."""
        target = self.bytes_until(start) + nbytes
        low, high = start, start + 1.0
        while self.bytes_until(high) < target:
            low, high = high, start + 2 * (high - start)
        # The cumulative curve is piecewise linear; bisection to a microsecond is plenty.
        for _ in range(60):
            middle = (low + high) / 2
            if self.bytes_until(middle) < target:
                low = middle
            else:
                high = middle
            if high - low < 1e-6:
                break
        return high


def trace_from_spec(spec: str) -> BandwidthTrace | None:
    """`off` (no pacing: None), a preset name, a preset scaled by a factor (`light:0.25`: the
    presets are sized for 64 px frames, smaller frames want slower links), a constant rate
    in bytes/s, or a CSV file."""
    if spec == "off":
        return None
    if _is_number(spec):
        return BandwidthTrace.constant(float(spec), name=f"{float(spec):g} B/s")
    if spec.endswith(".csv"):
        return BandwidthTrace.from_csv(Path(spec))
    name, colon, factor = spec.partition(":")
    if colon:
        if not _is_number(factor) or not 0 < float(factor) < float("inf"):
            raise TraceError(
                f"link scenario {spec!r}: expected <preset>:<factor> with a positive factor"
            )
        return BandwidthTrace.preset(name).scaled(float(factor), spec)
    return BandwidthTrace.preset(spec)


def mqtt_publish_size(topic: str, payload_bytes: int, qos: int = 0) -> int:
    """Bytes of an MQTT 3.1.1 PUBLISH packet: what the emulated link is charged per message.

    Fixed header (1 byte + the remaining length as a 1–4 byte varint), the topic with its
    2-byte length, the packet id at QoS > 0, then the payload.
    """
    remaining = 2 + len(topic.encode()) + (2 if qos else 0) + payload_bytes
    varint = next(n for n, limit in enumerate((128, 16_384, 2_097_152), 1) if remaining < limit)
    return 1 + varint + remaining


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


class LinkEmulator:
    """One camera's uplink: `await transmit(n)` returns when n bytes have crossed it."""

    def __init__(self, trace: BandwidthTrace, clock: Clock | None = None) -> None:
        self.trace = trace
        self.clock = clock or RealClock()
        self._origin: float | None = None
        self._busy_until = 0.0
        self.bytes_sent = 0
        # What the trace could carry over the time sends occupied the link, stretched by any
        # wake-up lateness the emulator could not absorb: bytes_sent / capacity_used is the
        # pacing accuracy under real scheduling.
        self.capacity_used = 0.0
        self._last_counted_end = 0.0

    def _now(self) -> float:
        now = self.clock.monotonic()
        if self._origin is None:
            self._origin = now
        return now - self._origin

    def finish_time(self, nbytes: int) -> float:
        """When a send of nbytes started now would end, in link time."""
        return self.trace.time_to_carry(max(self._start_time(), 0.0), nbytes)

    def fits_before(self, nbytes: int, deadline_monotonic: float) -> bool:
        """Whether nbytes would be across before a deadline on the clock's monotonic scale."""
        end = self.finish_time(nbytes)
        assert self._origin is not None
        return end + self._origin <= deadline_monotonic

    def _start_time(self) -> float:
        now = self._now()
        # A sender that wakes a little after its previous send ended (timer overshoot) is
        # treated as sending back to back; otherwise every wake-up delay would be lost
        # link capacity that the emulated radio never loses.
        return self._busy_until if now - self._busy_until <= CONTINUATION_SLACK_S else now

    async def transmit_before(
        self, nbytes: int, deadline_monotonic: float, reserve: int = 0
    ) -> float | None:
        """Send nbytes only if they, and `reserve` bytes after them, cross before a deadline
        on the clock's monotonic scale; None (and nothing sent) otherwise. The check and the
        send share one start time, so a send that was allowed can never end late."""
        start = max(self._start_time(), 0.0)
        if self.trace.time_to_carry(start, nbytes + reserve) > self.link_time_of(
            deadline_monotonic
        ):
            return None
        return await self._occupy(start, nbytes)

    async def transmit(self, nbytes: int) -> float:
        """Occupy the link for nbytes; returns the link time at which they have crossed."""
        return await self._occupy(max(self._start_time(), 0.0), nbytes)

    async def _occupy(self, start: float, nbytes: int) -> float:
        end = self.trace.time_to_carry(start, nbytes)
        self._busy_until = end
        self.bytes_sent += nbytes
        await self.clock.sleep(end - self._now())
        # A wake-up up to CONTINUATION_SLACK_S late costs nothing (the next send continues
        # from `end`); only lateness beyond it is link time lost to scheduling.
        lost = max(0.0, self._now() - end - CONTINUATION_SLACK_S)
        counted_from = max(start, self._last_counted_end)  # count each stretch once
        counted_to = end + lost
        if counted_to > counted_from:
            self.capacity_used += self.trace.bytes_until(counted_to) - self.trace.bytes_until(
                counted_from
            )
        self._last_counted_end = counted_to
        return end

    def link_time_of(self, monotonic: float) -> float:
        self._now()
        assert self._origin is not None
        return monotonic - self._origin

    def monotonic_of(self, link_time: float) -> float:
        """A link time on the clock's monotonic scale."""
        self._now()
        assert self._origin is not None
        return link_time + self._origin

    def rate_now(self) -> float:
        return self.trace.rate_at(self._now())

    def throughput_error(self) -> float:
        """(bytes carried − trace capacity over the busy wall time) ÷ capacity; 0 = exact."""
        if self.capacity_used <= 0:
            return 0.0
        return self.bytes_sent / self.capacity_used - 1.0

    def link_time(self) -> float:
        return self._now()


async def measure_throughput(
    trace: BandwidthTrace, seconds: float, chunk_bytes: int, clock: Clock | None = None
) -> tuple[float, float]:
    """Send chunks back to back for `seconds`; return (measured, trace) bytes per second."""
    link = LinkEmulator(trace, clock)
    clock = link.clock
    start = clock.monotonic()
    link.link_time()
    while clock.monotonic() - start < seconds:
        await link.transmit(chunk_bytes)
    elapsed = clock.monotonic() - start
    await asyncio.sleep(0)
    return link.bytes_sent / elapsed, trace.bytes_until(elapsed) / elapsed
