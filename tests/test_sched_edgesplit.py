"""EdgeSplit (thesis Ch. 4): round-time model, Algorithm 6, baselines, SplitPipe memory,
the profile loader and the profiler."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from edgebus.research import edgesplit as es
from edgebus.research import splitpipe
from edgebus.research.edgesplit_model import (
    DEVICE_CLASSES,
    SERVER_CLASS,
    DeviceClass,
    SplitProblem,
    build_problem,
    mbps_to_bytes_per_s,
    round_times,
)
from edgebus.research.edgesplit_profile import (
    EdgeSplitError,
    LayerCost,
    ModelProfile,
    ProfileError,
    load_profiles,
    parse_profiles,
)

# Clarabel's default accuracy: the convex step's answer is optimal to about 1e-8 relative.
SOLVER_RTOL = 1e-6


def bisection_round_time(setup_s: np.ndarray, transfer_s: np.ndarray) -> float:
    """P2 for fixed splits, solved independently of cvxpy: the optimal T makes every moving
    device finish together, B_i = C_i / (T - A_i), so T solves sum_i c_i / (T - a_i) = 1."""
    moving = transfer_s > 0
    low = float(setup_s.max())
    if not moving.any():
        return low

    def shares(t: float) -> float:
        gaps = t - setup_s[moving]
        return float(np.inf) if np.any(gaps <= 0) else float(np.sum(transfer_s[moving] / gaps))

    if shares(low) <= 1:
        return low
    high = low + float(transfer_s.sum())
    for _ in range(200):
        middle = (low + high) / 2
        low, high = (middle, high) if shares(middle) > 1 else (low, middle)
    return high


def exhaustive_optimum(problem: SplitProblem) -> tuple[float, tuple[int, ...]]:
    """min over every split combination of the optimal-bandwidth round time."""
    rows = np.arange(problem.size)
    best = (np.inf, ())
    for combo in itertools.product(range(problem.depth), repeat=problem.size):
        columns = np.array(combo)
        value = bisection_round_time(
            problem.compute_s[rows, columns],
            problem.transfer_bytes[columns] / problem.total_bandwidth,
        )
        if value < best[0]:
            best = (value, tuple(c + 1 for c in combo))
    return best


def random_problem(rng: np.random.Generator, devices: int, layers: int) -> SplitProblem:
    return SplitProblem(
        model="toy",
        devices=tuple(f"d{i}" for i in range(devices)),
        compute_s=rng.uniform(0.0, 10.0, (devices, layers)),
        transfer_bytes=rng.uniform(0.5, 20.0, layers),
        total_bandwidth=1.0,
    )


def toy_profile() -> ModelProfile:
    """Three layers with round numbers, for hand-checked sums."""
    return ModelProfile(
        name="toy",
        batch=4,
        layers=(
            LayerCost("l1", 1.0, 2.0, output_bytes=100, param_bytes=10, saved_bytes=50),
            LayerCost("l2", 0.5, 1.0, output_bytes=40, param_bytes=20, saved_bytes=120),
            LayerCost("l3", 0.25, 0.5, output_bytes=4, param_bytes=30, saved_bytes=60),
        ),
    )


# --- the round-time model -----------------------------------------------------------------


def test_build_problem_follows_eqs_4_1_to_4_5() -> None:
    slow = DeviceClass("slow", 2.0)
    server = DeviceClass("fast", 0.5)
    problem = build_problem(toy_profile(), [slow], total_mbps=8.0, batches=10, server=server)
    # device layers 1..j at factor 2, server layers j+1..3 at factor 0.5; fwd+bwd per layer
    # is 3, 1.5 and 0.75 s on the profiling CPU
    expected_a = 10 * np.array([2 * 3 + 0.5 * 2.25, 2 * 4.5 + 0.5 * 0.75, 2 * 5.25 + 0.0])
    np.testing.assert_allclose(problem.compute_s[0], expected_a)
    # C_j = 2 (b O_j + P_j) with P_j cumulative; no activations at the last (local) split
    np.testing.assert_allclose(problem.transfer_bytes, [2 * (1000 + 10), 2 * (400 + 30), 2 * 60])
    assert problem.total_bandwidth == mbps_to_bytes_per_s(8.0) == 1e6
    times = round_times(problem, [2], [1e6])
    np.testing.assert_allclose(times, expected_a[1] + 860 / 1e6)


def test_vanilla_fix_and_local_baselines() -> None:
    profile = load_profiles().model("lenet")
    problem = build_problem(profile, ["rpi4", "laptop", "jetson_nano"], 30.0, 50)
    split = es.best_common_split(problem)
    assert 1 <= split < problem.depth
    vanilla = es.vanilla(problem, split)
    fix = es.edgesplit_fix(problem, split)
    local = es.fully_local(problem)
    np.testing.assert_allclose(vanilla.bandwidth, problem.total_bandwidth / 3)
    assert fix.splits == vanilla.splits == (split,) * 3
    assert fix.round_s <= vanilla.round_s
    assert local.splits == (problem.depth,) * 3
    assert fix.bandwidth.sum() <= problem.total_bandwidth * (1 + 1e-9)
    assert all(
        vanilla.round_s <= es.vanilla(problem, other).round_s for other in range(1, problem.depth)
    )


# --- Algorithm 6 against exhaustive search --------------------------------------------------


@pytest.mark.parametrize("seed", range(8))
def test_algorithm6_reaches_the_exhaustive_optimum_on_tiny_cases(seed: int) -> None:
    """At Algorithm 6's fixed point no device can meet T with less bandwidth on another
    split, which is exactly the optimum of P1; so it must match exhaustive search up to the
    solver's accuracy."""
    rng = np.random.default_rng(seed)
    problem = random_problem(rng, devices=2 + seed % 2, layers=3 + (seed // 2) % 2)
    optimum, _ = exhaustive_optimum(problem)
    equal = np.full(problem.size, problem.total_bandwidth / problem.size)
    alternating = es.alternating_minimisation(problem, equal)
    assert alternating.round_s == pytest.approx(optimum, rel=SOLVER_RTOL)
    assert alternating.round_s >= optimum * (1 - SOLVER_RTOL)
    assert es.edgesplit(problem).round_s == pytest.approx(optimum, rel=SOLVER_RTOL)


def test_algorithm6_on_profiled_devices_matches_exhaustive() -> None:
    profile = load_profiles().model("lenet")
    for mbps in (30.0, 1000.0, 3000.0):
        problem = build_problem(profile, ["rpi4", "laptop", "jetson_nano"], mbps, 50)
        optimum, splits = exhaustive_optimum(problem)
        plan = es.edgesplit(problem)
        assert plan.round_s == pytest.approx(optimum, rel=SOLVER_RTOL)
        np.testing.assert_allclose(
            round_times(problem, plan.splits, plan.bandwidth).max(), plan.round_s
        )
    assert splits != (problem.depth,) * 3, "at 3 Gbps some device should split"


def test_one_device_gets_its_best_split_and_the_whole_link() -> None:
    problem = random_problem(np.random.default_rng(11), devices=1, layers=4)
    plan = es.edgesplit(problem)
    per_split = problem.compute_s[0] + problem.transfer_bytes / problem.total_bandwidth
    assert plan.splits == (int(np.argmin(per_split)) + 1,)
    assert plan.round_s == pytest.approx(per_split.min(), rel=SOLVER_RTOL)


def test_identical_devices_share_one_split_and_equal_bandwidth() -> None:
    profile = load_profiles().model("vgg")
    problem = build_problem(profile, ["jetson_nano"] * 4, 1000.0, 50)
    plan = es.edgesplit(problem)
    best_vanilla = min(es.vanilla(problem, s).round_s for s in range(1, problem.depth + 1))
    assert plan.round_s == pytest.approx(best_vanilla, rel=SOLVER_RTOL)
    np.testing.assert_allclose(plan.bandwidth, problem.total_bandwidth / 4, rtol=1e-4)


@pytest.mark.parametrize("seed", range(6))
def test_cvxpy_bandwidth_step_matches_bisection(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    problem = random_problem(rng, devices=3 + seed, layers=4)
    splits = rng.integers(1, problem.depth + 1, problem.size)
    bandwidth = es.optimal_bandwidth(problem, splits)
    assert bandwidth.sum() <= problem.total_bandwidth * (1 + 1e-9)
    columns = splits - 1
    expected = bisection_round_time(
        problem.compute_s[np.arange(problem.size), columns],
        problem.transfer_bytes[columns] / problem.total_bandwidth,
    )
    assert round_times(problem, splits, bandwidth).max() == pytest.approx(expected, rel=1e-7)


# --- never worse than fully local -------------------------------------------------------------


@pytest.mark.parametrize("model", ["lenet", "vgg"])
def test_edgesplit_never_slower_than_fully_local(model: str) -> None:
    profile = load_profiles().model(model)
    classes = list(DEVICE_CLASSES)
    rng = np.random.default_rng(5)
    for devices, mbps in [(1, 30.0), (3, 5.0), (8, 30.0), (8, 1000.0), (48, 30.0), (60, 300.0)]:
        chosen = [classes[i] for i in rng.integers(0, len(classes), devices)]
        problem = build_problem(profile, chosen, mbps, 50)
        plan = es.edgesplit(problem)
        assert plan.round_s <= es.fully_local(problem).round_s
        assert plan.bandwidth.sum() <= problem.total_bandwidth * (1 + 1e-9)


def test_edgesplit_falls_back_to_local_when_activations_dominate() -> None:
    # a huge activation and negligible compute: splitting can only lose
    problem = SplitProblem(
        model="toy",
        devices=("a", "b"),
        compute_s=np.array([[1.0, 1.1], [2.0, 2.1]]),
        transfer_bytes=np.array([1e6, 10.0]),
        total_bandwidth=100.0,
    )
    plan = es.edgesplit(problem)
    assert plan.splits == (2, 2)
    assert plan.round_s <= es.fully_local(problem).round_s


# --- bad input --------------------------------------------------------------------------------


def test_bad_inputs_raise_value_errors() -> None:
    profile = toy_profile()
    with pytest.raises(EdgeSplitError, match="devices"):
        build_problem(profile, [], 30.0, 10)
    with pytest.raises(EdgeSplitError, match="bandwidth"):
        build_problem(profile, ["rpi4"], -1.0, 10)
    with pytest.raises(EdgeSplitError, match="batches"):
        build_problem(profile, ["rpi4"], 30.0, 0)
    with pytest.raises(EdgeSplitError, match="device class 'abacus'"):
        build_problem(profile, ["abacus"], 30.0, 10)
    with pytest.raises(EdgeSplitError, match="compute_factor"):
        DeviceClass("broken", 0.0)
    problem = build_problem(profile, ["rpi4", "laptop"], 30.0, 10, server=SERVER_CLASS)
    with pytest.raises(EdgeSplitError, match=r"layer indices 1\.\.3"):
        round_times(problem, [0, 4], [1.0, 1.0])
    with pytest.raises(EdgeSplitError, match="exceeds the total"):
        round_times(problem, [1, 1], [problem.total_bandwidth] * 2)
    with pytest.raises(EdgeSplitError, match="rates >= 0"):
        round_times(problem, [1, 1], [-1.0, 1.0])
    with pytest.raises(EdgeSplitError, match="built for 3 devices"):
        es.optimal_bandwidth(problem, [1, 1], es.BandwidthAllocator(3))
    assert issubclass(EdgeSplitError, ValueError)


# --- SplitPipe memory -------------------------------------------------------------------------


def test_splitpipe_peak_memory_hand_checked_three_clients() -> None:
    profile = toy_profile()
    splits = [1, 2, 1]
    # union segment: layers 2..3, weights 20 + 30, plus their gradients -> base 100
    assert list(splitpipe.server_layers(profile, splits)) == [2, 3]
    assert splitpipe.server_weight_bytes(profile, splits) == 50
    assert splitpipe.separate_weight_bytes(profile, splits) == 50 + 30 + 50
    # split 1: saved 120 + 60, gradient max(100 + 40, 40 + 4); split 2: saved 60, grad 40 + 4
    assert splitpipe.client_footprints(profile, splits) == [
        splitpipe.ClientFootprint(180, 140),
        splitpipe.ClientFootprint(60, 44),
        splitpipe.ClientFootprint(180, 140),
    ]
    # FIFO: F F F holds 180 + 60 + 180, then the first B adds 140 -> 100 + 420 + 140
    assert splitpipe.peak_memory_fifo(profile, splits) == 660
    # backward-first: one client at a time, worst is 100 + 180 + 140
    assert splitpipe.peak_memory_backward_first(profile, splits) == 420
    assert splitpipe.peak_memory_fifo(profile, splits) >= splitpipe.peak_memory_backward_first(
        profile, splits
    )


def test_splitpipe_on_profiled_models_and_local_clients() -> None:
    profiles = load_profiles()
    for name in ("lenet", "vgg"):
        profile = profiles.model(name)
        for splits in ([1, 1, 1], [1, 2, 3], [profile.depth - 1] * 5):
            fifo = splitpipe.peak_memory_fifo(profile, splits)
            assert fifo >= splitpipe.peak_memory_backward_first(profile, splits) > 0
        # fully local clients put nothing on the server
        assert splitpipe.peak_memory_fifo(profile, [profile.depth] * 3) == 0


def test_splitpipe_rejects_bad_orders_and_splits() -> None:
    profile = toy_profile()
    with pytest.raises(EdgeSplitError, match="backward runs before its forward"):
        splitpipe.peak_memory(profile, [1, 2], [("B", 0), ("F", 0), ("F", 1), ("B", 1)])
    with pytest.raises(EdgeSplitError, match="one F and one B per client"):
        splitpipe.peak_memory(profile, [1, 2], [("F", 0), ("B", 0)])
    with pytest.raises(EdgeSplitError, match=r"layer indices 1\.\.3"):
        splitpipe.peak_memory_fifo(profile, [0])
    with pytest.raises(EdgeSplitError, match="at least one"):
        splitpipe.peak_memory_fifo(profile, [])


# --- the profile file -------------------------------------------------------------------------


def test_shipped_profile_loads_with_provenance() -> None:
    profiles = load_profiles()
    assert set(profiles.models) >= {"lenet", "vgg"}
    assert profiles.batch >= 1
    assert profiles.torch_version.startswith("2.")
    assert profiles.date != "unknown"
    assert profiles.model("lenet").depth == 5
    with pytest.raises(ProfileError, match="'resnet'"):
        profiles.model("resnet")


def test_profile_loader_errors(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="file not found"):
        load_profiles(tmp_path / "absent.json")
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(ProfileError, match="not valid JSON"):
        load_profiles(broken)
    layer = {
        "name": "l",
        "forward_s": 1.0,
        "backward_s": 1.0,
        "output_bytes": 4,
        "param_bytes": 4,
        "saved_bytes": 4,
    }
    good = {"format": 1, "batch": 8, "models": {"m": {"layers": [layer, layer]}}}
    assert parse_profiles(good).model("m").depth == 2
    cases = [
        ({**good, "format": 99}, "format 1"),
        ({**good, "batch": 0}, "batch"),
        ({**good, "models": {}}, "non-empty 'models'"),
        ({**good, "models": {"m": {"layers": [layer]}}}, ">= 2 layers"),
        ({**good, "models": {"m": {"layers": [layer, {"name": "x"}]}}}, "layer 2"),
        ({**good, "models": {"m": {"layers": [layer, {**layer, "forward_s": -1}]}}}, "forward_s"),
    ]
    for document, message in cases:
        path = tmp_path / "case.json"
        path.write_text(json.dumps(document))
        with pytest.raises(ProfileError, match=message):
            load_profiles(path)


def test_profiler_on_a_tiny_model(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    from edgebus.ml.layer_profile import profile_layers, profile_models

    layers = [
        ("conv", torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3, padding=1), torch.nn.ReLU())),
        ("fc", torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(2 * 4 * 4, 3))),
    ]
    rows = profile_layers(layers, (1, 4, 4), batch=2, repeats=1)
    assert [row["name"] for row in rows] == ["conv", "fc"]
    assert rows[0]["output_bytes"] == 2 * 2 * 4 * 4 * 4
    assert rows[0]["param_bytes"] == (2 * 9 + 2) * 4
    assert rows[1]["param_bytes"] == (32 * 3 + 3) * 4
    assert rows[1]["saved_bytes"] > 0  # the linear keeps its input for the weight gradient
    assert all(row["forward_s"] > 0 and row["backward_s"] > 0 for row in rows)
    path = profile_models(tmp_path / "p.json", batch=2, repeats=1, models=("lenet",))
    profiles = load_profiles(path)
    assert profiles.batch == 2
    assert profiles.model("lenet").depth == 5


# --- the experiment part ----------------------------------------------------------------------


def test_experiment_part_writes_its_files_and_checks(tmp_path: Path, monkeypatch) -> None:
    from edgebus.experiments import scheduling_edgesplit as part

    tiny = part.Preset(
        device_counts=(2, 8),
        count_mbps=(30.0,),
        bandwidths=(30.0, 1000.0),
        memory_clients=(2, 3),
        runtime_counts=(4,),
        runtime_repeats=1,
    )
    monkeypatch.setattr(part, "QUICK", tiny)
    ticks: list[str] = []
    report = part.run(tmp_path, quick=True, tick=ticks.append)
    assert len(ticks) == part.steps(True)
    assert report.name == "edgesplit"
    assert all(path.exists() and path.stat().st_size > 0 for path in report.files)
    assert {path.suffix for path in report.files} == {".csv", ".png"}
    assert [row["Mbps"] for row in report.rows] == [30.0, 1000.0, 30.0, 1000.0]
    never_worse = [name for name in report.checks if "never slower than fully local" in name]
    assert never_worse and report.checks[never_worse[0]]
