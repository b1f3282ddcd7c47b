"""The DQN policy: targets, history windows, a smoke train, ONNX/numpy parity, the
per-image decider and one-line errors for bad policy files."""

import json
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from edgebus.ml.train_dqn import (  # noqa: E402
    DQNTrainConfig,
    SegmentSampler,
    export_dqn,
    q_network,
    q_targets,
    train_dqn,
)
from edgebus.policies import dqn as dqn_module  # noqa: E402
from edgebus.policies.costs import costs_from_logits  # noqa: E402
from edgebus.policies.dqn import (  # noqa: E402
    DQNSpec,
    NumpyMLP,
    PolicyFileError,
    load_dqn,
    q_size,
    send_decisions,
)
from edgebus.policies.policy import simulate  # noqa: E402
from edgebus.policies.runtime import OffloadDecider, policy_for  # noqa: E402
from edgebus.policies.synthetic import synthetic_images  # noqa: E402
from edgebus.policies.token_bucket import BucketParams  # noqa: E402
from edgebus.policies.traces import locreset_indices, markov_gaps  # noqa: E402

PARAMS = BucketParams.from_rate(0.25, 2)  # (N, P, M) = (1, 4, 8): 8 + 5 Q-values


@pytest.fixture(scope="module")
def data():
    d = synthetic_images(3000, seed=1)
    return costs_from_logits(d.logits, d.labels, d.strong_loss)[0]


@pytest.fixture(scope="module")
def trained(data, tmp_path_factory):
    """A tiny DQN with gap inputs, trained for a few iterations and exported."""
    spec = DQNSpec(PARAMS.n, PARAMS.p, PARAMS.m, metrics=6, gaps=3, hidden=16, layers=2)
    train = data.train.sorted_by_metric()
    idx = locreset_indices(len(train.metric), 500, 4, 0.1, 0.1, seed=3)
    gaps = markov_gaps(500, 4, 1, 3, 0.05, 0.05, seed=3)
    sampler = SegmentSampler(spec, idx, gaps, train.metric, train.reward)
    config = DQNTrainConfig(iterations=4, segments=512, batch=64, threads=1)
    result = train_dqn(spec, sampler, config)
    folder = tmp_path_factory.mktemp("dqn")
    card = export_dqn(result, folder, "dqn_tiny", {"training": {"note": "test"}})
    return result, card


def test_output_layout_has_one_q_per_level_and_action():
    assert q_size(BucketParams.from_rate(0.1, 4)) == 71  # the paper's count for (0.1, 4)
    q = np.zeros((1, q_size(PARAMS)))
    q[0, 8 + 1] = 1.0  # Q(P + 1, 1) wins at level P + 1 only
    q[0, PARAMS.p - PARAMS.n] = 2.0  # Q(P, 0) beats Q(P, 1) = 0
    assert send_decisions(q, PARAMS).tolist() == [[False, True, True, True, True]]


def test_targets_match_a_loop_over_levels_and_actions():
    spec = DQNSpec(PARAMS.n, PARAMS.p, PARAMS.m, metrics=2)
    rng = np.random.default_rng(0)
    q_next = rng.normal(size=(5, q_size(PARAMS))).astype(np.float32)
    reward = rng.choice([-1.0, 0.0, 1.0], 5).astype(np.float32)
    gap = rng.integers(1, 4, 5)
    got = q_targets(torch.tensor(q_next), torch.tensor(reward), torch.tensor(gap), spec, 0.9)
    n, p, m = PARAMS.n, PARAMS.p, PARAMS.m

    def qmax(row, level):
        keep = q_next[row, level - n]
        return max(keep, q_next[row, (m - n + 1) + level - p]) if level >= p else keep

    expected = np.zeros_like(q_next)
    for row in range(5):
        for level in range(n, m + 1):
            expected[row, level - n] = 0.9 * qmax(row, min(m, level + n * gap[row]))
        for level in range(p, m + 1):
            nxt = min(m, level - p + n * gap[row])
            expected[row, (m - n + 1) + level - p] = reward[row] + 0.9 * qmax(row, nxt)
    expected -= expected.mean()
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5, atol=1e-5)


def test_history_windows_are_most_recent_first_and_zero_padded():
    spec = DQNSpec(1, 4, 8, metrics=3, gaps=2)
    metrics = np.array([10.0, 20.0, 30.0, 40.0])
    indices = np.array([[0, 1, 2, 3]])
    gaps = np.array([[2, 3, 4, 5]])
    sampler = SegmentSampler(spec, indices, gaps, metrics, np.zeros(4))
    window = sampler._history(np.array([0, 0]), np.array([0, 2]))
    assert window[0].tolist() == [10, 0, 0, 0, 0]
    assert window[1].tolist() == [30, 20, 10, 3, 2]  # gaps before image 2: g1, then g0


def test_smoke_train_exports_and_all_runtimes_agree(trained):
    result, card = trained
    assert len(result.losses) == 4 and all(np.isfinite(result.losses))
    x = np.random.default_rng(1).normal(size=(64, result.spec.inputs)).astype(np.float32)
    with torch.no_grad():
        expected = result.model(torch.from_numpy(x)).numpy()
    by_numpy = load_dqn(card, "numpy").q(x)
    by_ort = load_dqn(card, "onnxruntime").q(x)
    np.testing.assert_allclose(by_numpy, expected, atol=1e-5)
    np.testing.assert_allclose(by_ort, expected, atol=1e-5)
    np.testing.assert_allclose(NumpyMLP.from_torch(result.model)(x), expected, atol=1e-5)


def test_dqn_never_overdraws_and_the_decider_matches_the_simulator(trained, data):
    _, card = trained
    test = data.test.sorted_by_metric()
    idx = locreset_indices(len(test.metric), 400, 3, 0.1, 0.1, seed=5)
    gaps = markov_gaps(400, 3, 1, 3, 0.05, 0.05, seed=5)
    metrics, rewards = test.metric[idx], test.reward[idx]
    policy = load_dqn(card)
    result = simulate(policy, PARAMS, metrics, rewards, gaps)
    assert result.min_level >= PARAMS.n
    # The same stream, one image at a time through the camera-side API.
    decider = OffloadDecider(load_dqn(card), PARAMS)
    gain, prev_gap = 0.0, 1
    for t in range(400):
        decision = decider.decide(float(metrics[0, t]), prev_gap)
        assert PARAMS.n <= decision.level_before <= PARAMS.m
        assert not decision.offload or decision.level_before >= PARAMS.p
        gain += rewards[0, t] * decision.offload
        prev_gap = int(gaps[0, t])
    assert gain == pytest.approx(result.gain[0])


def test_decider_modes_and_bad_inputs(data, tmp_path):
    never = OffloadDecider(policy_for("never", PARAMS, data), PARAMS)
    always = OffloadDecider(policy_for("always", PARAMS, data), PARAMS)
    assert not any(never.decide(5.0).offload for _ in range(20))
    sent = [always.decide(0.0).offload for _ in range(20)]
    assert sum(sent) == 2 + 19 // 4  # b tokens at the start, then one every 1/r images
    mdp_decider = OffloadDecider(policy_for("mdp", PARAMS, data), PARAMS)
    assert mdp_decider.decide(10.0).offload
    with pytest.raises(ValueError, match="offload mode must be one of"):
        policy_for("sometimes", PARAMS, data)
    bad = tmp_path / "dqn_bad.json"
    bad.write_text("{not json")
    with pytest.raises(PolicyFileError, match=r"dqn_bad\.json: cannot read it as JSON"):
        load_dqn(bad)
    bad.write_text(json.dumps({"spec": {"n": 1}, "file": "x.onnx"}))
    with pytest.raises(PolicyFileError, match="not a DQN card"):
        load_dqn(bad)
    bad.write_text(json.dumps({"spec": {"n": 1, "p": 4, "m": 8}, "file": "missing.onnx"}))
    with pytest.raises(PolicyFileError, match=r"missing\.onnx not found"):
        load_dqn(bad)
    (tmp_path / "junk.onnx").write_bytes(b"junk")
    bad.write_text(json.dumps({"spec": {"n": 1, "p": 4, "m": 8}, "file": "junk.onnx"}))
    with pytest.raises(PolicyFileError, match="cannot read it as ONNX"):
        load_dqn(bad)
    with pytest.raises(PolicyFileError, match="backend must be"):
        load_dqn(bad, "tensorflow")


def test_q_network_has_the_paper_shape():
    spec = DQNSpec(1, 10, 40)
    net = q_network(spec)
    linear = [m for m in net if isinstance(m, torch.nn.Linear)]
    assert [m.in_features for m in linear] == [96, 64, 64, 64, 64, 64]
    assert linear[-1].out_features == 71


def test_without_the_onnx_package_the_numpy_backend_runs_in_onnxruntime(trained, monkeypatch):
    # onnx is in the `train` extra only; a runtime install must still run a DQN camera.
    card = trained[1]
    real = dqn_module.importlib.util.find_spec
    monkeypatch.setattr(dqn_module.importlib.util, "find_spec",
                        lambda name, *a: None if name == "onnx" else real(name, *a))  # fmt: skip
    x = np.random.default_rng(1).random((3, trained[0].spec.inputs)).astype(np.float32)
    policy = load_dqn(card, "numpy")
    assert not isinstance(policy.q, dqn_module.NumpyMLP)
    np.testing.assert_allclose(policy.q(x), load_dqn(card, "onnxruntime").q(x), atol=1e-6)


def test_a_tool_loads_neither_the_nodes_nor_onnx():
    heavy = "('onnx', 'edgebus.nodes.camera')"
    code = "import sys, edgebus.cli, edgebus.actor.lifecycle; "
    code += f"print([m for m in {heavy} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
