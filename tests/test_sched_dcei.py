"""DCEI / JSTSH (thesis Ch. 5): Eq. 5.2, the round with queueing, memory, the schedulers and
the experiment part."""

from __future__ import annotations

import csv
import itertools
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgebus.experiments import scheduling_jstsh
from edgebus.scheduling.dcei import (
    DceiInfeasibleError,
    DceiInputError,
    DceiPlacement,
    DceiProblem,
    Device,
    Stream,
    check_placement,
    cost_below,
    jstsh,
    map_detections,
    memory_use,
    nmno,
    nmwo,
    offload_reid,
    round_cost,
    simulate_round,
    stream_latencies,
    wmno,
)

DETECT_MB, REID_MB = 600.0, 700.0


def fig_5_3() -> DceiProblem:
    """Thesis Fig. 5.3 as the text implies it: devices e1-e3 and cameras c1-c4, every task
    (a detection or a re-ID) one unit of time on any device (loads 1, compute 1), uploads
    free, and shipping a stream's intermediate data to another device half a unit
    (D = 0.5, R = 1); memory holds every model, so only the placement matters."""
    devices = tuple(Device(f"e{i + 1}", compute=1.0, memory=10.0) for i in range(3))
    streams = tuple(Stream(f"c{k + 1}", 1.0, 1.0, 0.5) for k in range(4))
    return DceiProblem(devices, streams, np.zeros((3, 4)), np.ones((3, 3)), 1.0, 1.0)


def all_placements(problem: DceiProblem) -> list[DceiPlacement]:
    pairs = list(itertools.product(range(problem.num_devices), repeat=2))
    return [
        DceiPlacement(detect=tuple(p[0] for p in combo), reid=tuple(p[1] for p in combo))
        for combo in itertools.product(pairs, repeat=problem.num_streams)
    ]


def test_fig_5_3_motivating_example() -> None:
    """Random mapping 6 units, mapping only 4, offloading only 4.5, joint placement least.

    The figure's random draw puts c1-c3 on e1 and c4 on e2 (e3 idle). "Offloading only"
    keeps that mapping and ships e1's three re-IDs to the idle e3: e1's last detection ends
    at 3, its crop arrives at 3.5 and its re-ID ends at 4.5."""
    problem = fig_5_3()
    random_mapping = DceiPlacement(detect=(0, 0, 0, 1), reid=(0, 0, 0, 1))
    offloading_only = DceiPlacement(detect=(0, 0, 0, 1), reid=(2, 2, 2, 1))
    assert simulate_round(problem, random_mapping).makespan_s == pytest.approx(6.0)
    assert simulate_round(problem, wmno(problem)).makespan_s == pytest.approx(4.0)
    assert simulate_round(problem, offloading_only).makespan_s == pytest.approx(4.5)
    joint = simulate_round(problem, jstsh(problem)).makespan_s
    assert joint == pytest.approx(3.0)
    # 3 is the least any placement reaches: 8 unit tasks on 3 devices put 3 on one of them.
    best = min(simulate_round(problem, p).makespan_s for p in all_placements(problem))
    assert joint == pytest.approx(best)
    # Stage 2 on the figure's random mapping already beats the figure's offloading.
    assert simulate_round(problem, offload_reid(problem, (0, 0, 0, 1))).makespan_s == 4.0


def two_device_problem(diagonal: float = 0.0) -> DceiProblem:
    devices = (Device("a", compute=10.0, memory=2000.0), Device("b", compute=20.0, memory=2000.0))
    streams = (Stream("s0", 5.0, 4.0, 300.0), Stream("s1", 8.0, 2.0, 100.0))
    upload = np.array([[0.1, 0.2], [0.3, 0.4]])
    rate = np.array([[diagonal, 100.0], [50.0, diagonal]])
    return DceiProblem(devices, streams, upload, rate, DETECT_MB, REID_MB)


def test_eq_5_2_hand_checked() -> None:
    problem = two_device_problem()
    # s0 all on a: 0.1 + 5/10 + 4/10 = 1.0, no transfer.
    # s1 detects on b, re-IDs on a: 0.4 + 8/20 + 2/10 + 100 B / R[b, a] = 50 B/s -> 3.0.
    placement = DceiPlacement(detect=(0, 1), reid=(0, 0))
    assert stream_latencies(problem, placement) == pytest.approx([1.0, 3.0])
    # s0 offloaded a -> b: 0.1 + 0.5 + 4/20 + 300/100 = 3.8; s1 local on a: 0.2 + 0.8 + 0.2.
    flipped = DceiPlacement(detect=(0, 0), reid=(1, 0))
    assert stream_latencies(problem, flipped) == pytest.approx([3.8, 1.2])
    # The diagonal of R is never charged, whatever it holds.
    odd = two_device_problem(diagonal=1e-9)
    assert stream_latencies(odd, placement) == pytest.approx([1.0, 3.0])


def test_round_equals_eq_5_2_without_sharing_and_never_beats_it() -> None:
    problem = two_device_problem()
    separate = DceiPlacement(detect=(0, 1), reid=(0, 1))  # no device or link shared
    assert simulate_round(problem, separate).completion_s == pytest.approx(
        stream_latencies(problem, separate)
    )
    for placement in all_placements(problem):
        completion = simulate_round(problem, placement).completion_s
        assert (completion >= stream_latencies(problem, placement) - 1e-12).all()


def random_problem(seed: int, devices: int = 4, streams: int = 6) -> DceiProblem:
    """Heterogeneous devices whose memory often fits one model only, some cameras far away."""
    rng = np.random.default_rng(seed)
    memory_choices = [DETECT_MB, REID_MB, DETECT_MB + REID_MB, 3000.0]
    pool = tuple(
        Device(f"d{i}", float(rng.uniform(20, 300)), float(rng.choice(memory_choices)))
        for i in range(devices)
    )
    # At least one device holds both, so the all-local baselines are defined too.
    pool = (Device("big", 150.0, 3000.0), *pool[1:])
    persons = rng.integers(1, 7, size=streams)
    cameras = tuple(Stream(f"c{k}", 16.5, 5.35 * n, 98304.0 * n) for k, n in enumerate(persons))
    upload = rng.uniform(0.01, 0.06, size=(devices, streams))
    upload[rng.random((devices, streams)) < 0.2] = np.inf
    upload[0] = rng.uniform(0.01, 0.06, size=streams)  # "big" reaches every camera
    rate = np.full((devices, devices), float(rng.uniform(1, 30)) * 1e6 / 8)
    return DceiProblem(pool, cameras, upload, rate, DETECT_MB, REID_MB)


@pytest.mark.parametrize("seed", range(12))
def test_no_scheduler_exceeds_memory(seed: int) -> None:
    problem = random_problem(seed)
    memory = np.array([device.memory for device in problem.devices])
    rng = np.random.default_rng(seed)
    for placement in (jstsh(problem), wmno(problem), nmno(problem, rng), nmwo(problem, rng)):
        check_placement(problem, placement)
        assert (memory_use(problem, placement) <= memory).all()


def reuse_problem(spare_memory: float) -> DceiProblem:
    """Cameras reach only `cam-hub` (room for a detection model alone); `fast-1` and
    `fast-2` are idle and equally fast, but `fast-2` has only `spare_memory`."""
    devices = (
        Device("cam-hub", compute=100.0, memory=DETECT_MB),
        Device("fast-1", compute=100.0, memory=REID_MB),
        Device("fast-2", compute=100.0, memory=spare_memory),
    )
    streams = tuple(Stream(f"c{k}", 10.0, 20.0, 1000.0) for k in range(4))
    upload = np.vstack([np.full(4, 0.01), np.full((2, 4), np.inf)])
    return DceiProblem(devices, streams, upload, np.full((3, 3), 1e6), DETECT_MB, REID_MB)


def test_reid_model_reuse_when_memory_runs_out() -> None:
    roomy = jstsh(reuse_problem(spare_memory=REID_MB))
    assert set(roomy.reid) == {1, 2}  # with room, re-ID spreads over both idle devices
    short = reuse_problem(spare_memory=REID_MB - 1)
    placement = jstsh(short)
    assert placement.reid == (1, 1, 1, 1)  # fast-2 cannot hold a model: all reuse fast-1's
    assert memory_use(short, placement) == pytest.approx([DETECT_MB, REID_MB, 0.0])


def test_stage_1_keeps_room_for_a_re_id_model() -> None:
    """The fast device has room for one model and is the only one a re-ID model fits on:
    Stage 1 must leave it free instead of taking it for detection."""
    devices = (
        Device("fast-small", compute=300.0, memory=REID_MB),
        Device("slow", compute=30.0, memory=DETECT_MB),
    )
    streams = tuple(Stream(f"c{k}", 16.5, 10.0, 1e4) for k in range(3))
    problem = DceiProblem(
        devices, streams, np.full((2, 3), 0.01), np.full((2, 2), 1e6), DETECT_MB, REID_MB
    )
    assert map_detections(problem) == (1, 1, 1)
    assert jstsh(problem) == DceiPlacement(detect=(1, 1, 1), reid=(0, 0, 0))
    with pytest.raises(DceiInfeasibleError, match="detection and re-ID together"):
        wmno(problem)


@pytest.mark.parametrize("seed", range(12))
def test_jstsh_never_behind_mapping_only(seed: int) -> None:
    """Guaranteed by construction: JSTSH keeps WMNO's placement when nothing beats it."""
    problem = random_problem(seed)
    chosen, mapping_only = jstsh(problem), wmno(problem)
    assert not cost_below(
        round_cost(problem, mapping_only.detect, mapping_only.reid),
        round_cost(problem, chosen.detect, chosen.reid),
    )


def test_jstsh_beats_random_baselines_on_seeded_instances() -> None:
    """Not a theorem: on these seeded experiment instances JSTSH's round is shorter than
    every random NMNO and NMWO draw."""
    for instance in range(4):
        problem = scheduling_jstsh.make_problem(6, instance, mbps=30.0)
        rng = np.random.default_rng(instance)
        ours = simulate_round(problem, jstsh(problem)).makespan_s
        for _ in range(4):
            assert ours < simulate_round(problem, nmno(problem, rng)).makespan_s
            assert ours < simulate_round(problem, nmwo(problem, rng)).makespan_s


def test_offloading_stops_when_the_link_is_slow() -> None:
    problem = scheduling_jstsh.make_problem(6, 0, mbps=30.0)
    slow = DceiProblem(
        problem.devices,
        problem.streams,
        problem.upload_s,
        np.full(problem.rate.shape, 1e3),  # 8 kbit/s: one crop takes minutes
        problem.detect_memory,
        problem.reid_memory,
    )
    assert not any(jstsh(slow).offloaded)
    assert jstsh(slow) == wmno(slow)
    assert any(jstsh(problem).offloaded)  # at 30 Mbps the same cameras do offload


def test_jstsh_close_to_exhaustive_on_tiny_cases() -> None:
    """JSTSH against every placement of 3 streams on 2 devices (64 placements)."""
    for seed in range(5):
        problem = random_problem(seed, devices=2, streams=3)
        memory = np.array([device.memory for device in problem.devices])
        feasible = []
        for placement in all_placements(problem):
            reachable = np.isfinite(problem.upload_s[list(placement.detect), range(3)]).all()
            if reachable and (memory_use(problem, placement) <= memory).all():
                feasible.append(simulate_round(problem, placement).makespan_s)
        ours = simulate_round(problem, jstsh(problem)).makespan_s
        assert min(feasible) - 1e-12 <= ours <= 1.25 * min(feasible)


def one_line(error: pytest.ExceptionInfo[ValueError]) -> str:
    message = str(error.value)
    assert "\n" not in message and isinstance(error.value, ValueError)
    return message


def test_bad_inputs_raise_one_line_errors() -> None:
    devices = (Device("a", 10.0, 2000.0), Device("b", 10.0, 2000.0))
    streams = (Stream("s", 1.0, 1.0, 1.0),)
    with pytest.raises(DceiInputError) as error:
        DceiProblem(devices, streams, np.zeros((1, 2)), np.ones((2, 2)), 1.0, 1.0)
    assert "upload_s has shape (1, 2); expected (2, 1)" in one_line(error)
    with pytest.raises(DceiInputError) as error:
        DceiProblem(devices, streams, np.zeros((2, 1)), np.ones((3, 3)), 1.0, 1.0)
    assert "rate has shape (3, 3); expected (2, 2)" in one_line(error)
    with pytest.raises(DceiInputError) as error:
        Device("a", -1.0, 100.0)
    assert "device 'a' compute is -1.0" in one_line(error)
    with pytest.raises(DceiInputError) as error:
        Stream("s", 1.0, float("nan"), 1.0)
    assert "reid_load" in one_line(error)
    with pytest.raises(DceiInputError) as error:
        DceiProblem(devices, streams, np.zeros((2, 1)), -np.ones((2, 2)), 1.0, 1.0)
    assert "rate has entries <= 0" in one_line(error)
    with pytest.raises(DceiInputError) as error:
        DceiProblem(devices, (), np.zeros((2, 0)), np.ones((2, 2)), 1.0, 1.0)
    assert "streams is empty" in one_line(error)
    with pytest.raises(DceiInfeasibleError) as error:
        DceiProblem(devices, streams, np.full((2, 1), np.inf), np.ones((2, 2)), 1.0, 1.0)
    assert "reaches no device" in one_line(error)
    problem = DceiProblem(devices, streams, np.zeros((2, 1)), np.ones((2, 2)), 1.0, 1.0)
    with pytest.raises(DceiInputError) as error:
        stream_latencies(problem, DceiPlacement(detect=(0,), reid=(2,)))
    assert "placement.reid[0] is 2" in one_line(error)


def test_no_device_with_memory_is_infeasible() -> None:
    devices = (Device("a", 10.0, 0.0), Device("b", 10.0, 650.0))
    streams = (Stream("s", 1.0, 1.0, 1.0),)
    problem = DceiProblem(devices, streams, np.zeros((2, 1)), np.ones((2, 2)), DETECT_MB, REID_MB)
    for schedule in (jstsh, wmno, lambda p: nmwo(p, np.random.default_rng(0))):
        with pytest.raises(DceiInfeasibleError) as error:
            schedule(problem)
        assert "MB" in one_line(error)
    with pytest.raises(DceiInfeasibleError) as error:
        check_placement(problem, DceiPlacement(detect=(1,), reid=(1,)))
    assert "needs 1300 MB on device 'b'; it has 650" in one_line(error)


def test_scheduling_layer_does_not_import_torch() -> None:
    code = (
        "import sys, edgebus.scheduling.dcei as d; "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_experiment_part_writes_files_and_checks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tiny = scheduling_jstsh.Preset(2, 2, (2, 6), (5.0, 30.0), 6, 30.0)
    monkeypatch.setattr(scheduling_jstsh, "QUICK", tiny)
    ticks: list[str] = []
    report = scheduling_jstsh.run(tmp_path, quick=True, tick=ticks.append)
    assert len(ticks) == scheduling_jstsh.steps(quick=True) == 4
    assert report.name == "jstsh" and len(report.rows) == 4
    assert all(path.exists() and path.stat().st_size > 0 for path in report.files)
    assert len(report.checks) == 3
    # The paired gain is the mean of per-instance JSTSH / best-baseline ratios.
    instances = list(csv.DictReader((tmp_path / "jstsh_instances.csv").open()))
    for point in csv.DictReader((tmp_path / "jstsh_bandwidth.csv").open()):

        def fps(method: str, point: dict = point) -> np.ndarray:
            return np.array(
                [
                    float(r["throughput_fps"])
                    for r in instances
                    if r["sweep"] == "bandwidth"
                    and r["mbps"] == point["mbps"]
                    and r["method"] == method
                ]
            )

        ratios = fps("JSTSH") / fps(point["best_baseline"]) - 1
        assert float(point["paired_gain_vs_best"]) == pytest.approx(ratios.mean(), abs=1e-5)
        assert float(point["paired_gain_vs_best_sem"]) == pytest.approx(
            ratios.std(ddof=1) / np.sqrt(len(ratios)), abs=1e-5
        )
    again = scheduling_jstsh.make_problem(6, 1, 30.0)
    first = scheduling_jstsh.make_problem(6, 1, 30.0)
    assert np.array_equal(again.upload_s, first.upload_s)  # seeded
