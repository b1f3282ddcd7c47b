import asyncio

import numpy as np
import pytest

from edgebus.broker.link import (
    PRESET_RATES,
    BandwidthTrace,
    LinkEmulator,
    TraceError,
    measure_throughput,
)
from edgebus.clock import ScaledClock


def test_constant_trace_arithmetic():
    trace = BandwidthTrace.constant(1000)
    assert trace.bytes_until(2.5) == pytest.approx(2500)
    assert trace.time_to_carry(1.0, 500) == pytest.approx(1.5, abs=1e-5)


def test_switching_trace_alternates_every_ten_seconds():
    trace = BandwidthTrace.preset("switching")
    assert trace.rate_at(5) == PRESET_RATES["none"]
    assert trace.rate_at(15) == PRESET_RATES["heavy"]
    assert trace.rate_at(25) == PRESET_RATES["none"]
    per_cycle = 10 * (PRESET_RATES["none"] + PRESET_RATES["heavy"])
    assert trace.bytes_until(40) == pytest.approx(2 * per_cycle)
    # Sending across a rate change: 9.5 s at "none" leaves 0.5 s of it, then "heavy".
    end = trace.time_to_carry(9.5, 0.5 * PRESET_RATES["none"] + 0.5 * PRESET_RATES["heavy"])
    assert end == pytest.approx(10.5, abs=1e-5)


def test_stepped_trace_holds_its_last_rate():
    trace = BandwidthTrace.preset("stepped")
    assert [trace.rate_at(t) for t in (1, 11, 21, 100)] == [
        PRESET_RATES["none"],
        PRESET_RATES["light"],
        PRESET_RATES["heavy"],
        PRESET_RATES["heavy"],
    ]


def test_trace_file(tmp_path):
    path = tmp_path / "trace.csv"
    path.write_text("time_s,bytes_per_s\n0,100\n2,300\n")
    trace = BandwidthTrace.from_csv(path)
    assert trace.bytes_until(3) == pytest.approx(500)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("0,100\n2,abc\n", "expected rows of time_s,bytes_per_s"),
        ("1,100\n", "begin at 0"),
        ("0,100\n0,200\n", "increase"),
        ("0,-5\n", "non-negative"),
        ("0,100\n5,0\n", "final rate must be positive"),
    ],
)
def test_bad_trace_files_are_one_line(tmp_path, text, match):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(TraceError, match=match) as info:
        BandwidthTrace.from_csv(path)
    assert "\n" not in str(info.value)


def test_unknown_preset_and_missing_file(tmp_path):
    with pytest.raises(TraceError, match="unknown link scenario 'medium'"):
        BandwidthTrace.preset("medium")
    with pytest.raises(TraceError, match="cannot be read"):
        BandwidthTrace.from_csv(tmp_path / "none.csv")


async def test_sends_are_serialised_on_the_link():
    link = LinkEmulator(BandwidthTrace.constant(10_000))
    started = asyncio.get_running_loop().time()
    await asyncio.gather(link.transmit(1000), link.transmit(1000), link.transmit(1000))
    assert asyncio.get_running_loop().time() - started == pytest.approx(0.3, abs=0.05)


async def test_deadline_check():
    link = LinkEmulator(BandwidthTrace.constant(1000))
    now = link.clock.monotonic()
    assert link.fits_before(400, now + 0.5)
    assert not link.fits_before(600, now + 0.5)


@pytest.mark.serial  # throughput measured against wall time: runs alone
async def test_pacing_accuracy_constant_real_time():
    measured, expected = await measure_throughput(BandwidthTrace.constant(20_000), 1.5, 512)
    assert measured == pytest.approx(expected, rel=0.05)


@pytest.mark.serial  # throughput measured against wall time: runs alone
async def test_pacing_accuracy_switching_on_a_fast_clock():
    # 20 s of link time (both rates) in 4 s of wall time. At 10x the emulator's 20 ms
    # continuation slack is 2 ms of wall time, which a loaded machine's timers overshoot.
    measured, expected = await measure_throughput(
        BandwidthTrace.preset("switching"), 20.0, 1024, clock=ScaledClock(5.0)
    )
    assert measured == pytest.approx(expected, rel=0.05)


def test_presets_fit_a_full_pnc_frame_only_without_jamming():
    from edgebus.broker.link import mqtt_publish_size
    from edgebus.codecs import get_codec
    from edgebus.messages import EndOfFrame, FrameChunk, encode
    from edgebus.shapes import render_shape
    from edgebus.topics import Topics

    codec = get_codec("pnc")
    topics = Topics("lab")
    full, first = [], []
    for frame_id in range(20):
        units = codec.encode(render_shape(7, frame_id)[0]).units
        marker = EndOfFrame("camera-1", frame_id, 10, 10, 1200, "pnc", "pnc64", 1.7e9, 1.7e9)
        wire = [
            mqtt_publish_size(
                topics.frame_chunk("camera-1", frame_id, i),
                len(encode(FrameChunk("camera-1", frame_id, i, "pnc", "pnc64", 1.7e9, unit))),
            )
            for i, unit in enumerate(units)
        ]
        end = mqtt_publish_size(topics.frame_end("camera-1", frame_id), len(encode(marker)), 1)
        full.append(sum(wire) + end)
        first.append(wire[0] + end)
    per_period = {name: rate * 0.5 for name, rate in PRESET_RATES.items()}
    # At T = 500 ms a whole frame (one unit per chunk) fits only without jamming ...
    assert np.max(full) <= per_period["none"]
    assert np.min(full) > per_period["light"] > per_period["heavy"]
    # ... and heavy jamming at T = 300 ms still carries the first feature of most frames.
    assert np.mean(np.array(first) <= PRESET_RATES["heavy"] * 0.3) >= 0.8


def test_mqtt_publish_size():
    from edgebus.broker.link import mqtt_publish_size

    assert mqtt_publish_size("a/b", 10) == 1 + 1 + 2 + 3 + 10
    assert mqtt_publish_size("a/b", 200, qos=1) == 1 + 2 + 2 + 3 + 2 + 200


def test_trace_specs():
    from edgebus.broker.link import trace_from_spec

    assert trace_from_spec("off") is None
    assert trace_from_spec("2500").rate_at(3) == 2500
    with pytest.raises(TraceError, match="unknown link scenario"):
        trace_from_spec("jammed")


def test_scaled_presets_keep_their_timing():
    from edgebus.broker.link import trace_from_spec

    light = trace_from_spec("light:0.25")
    assert light is not None and light.rate_at(5) == pytest.approx(600.0)
    switching = trace_from_spec("switching:0.5")
    assert switching is not None and switching.cycle_s == 20.0
    assert [switching.rate_at(t) for t in (1, 11, 21)] == [3000.0, 750.0, 3000.0]
    for bad in ("light:0", "light:-1", "light:x", "jammed:2"):
        with pytest.raises(TraceError) as info:
            trace_from_spec(bad)
        assert "\n" not in str(info.value)
