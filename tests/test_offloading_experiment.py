"""The offloading experiment on tiny sizes: every figure family writes its CSV rows and PNG,
and bad inputs are one-line errors."""

import csv
from dataclasses import replace

import numpy as np
import pytest
from typer.testing import CliRunner

pytest.importorskip("torch")

from edgebus.cli import app
from edgebus.experiments import offloading
from edgebus.policies.costs import save_costs
from edgebus.policies.metric import OffloadMetric, top_k_loss
from edgebus.policies.synthetic import synthetic_images

TINY = replace(
    offloading.QUICK,
    streams=2, length=200, dqn_iterations=1, dqn_segments=256, threads=1,
    spreads=(0.1, 1.0), rprobs=(0.1,), rates=(0.1,), depths=(4,), tprobs=(0.01,),
    histories=(3,), target_streams=2, target_length=200,
)  # fmt: skip


@pytest.fixture(scope="module")
def costs_file(tmp_path_factory):
    d = synthetic_images(1500, seed=2)
    weak = top_k_loss(d.logits, d.labels, 5)
    metric = OffloadMetric.fit(d.logits, d.labels, weak - d.strong_loss)(d.logits)
    path = tmp_path_factory.mktemp("costs") / "costs.npz"
    save_costs(path, metric, weak, d.strong_loss)
    return path


def test_tiny_run_writes_every_figure(tmp_path, costs_file):
    ticks = []
    report = offloading.run(tmp_path, TINY, costs_file, tick=ticks.append)
    assert len(ticks) == offloading.steps(TINY, None, True)
    figures = {r.figure for r in report.rows}
    assert figures == {"fig5_spread", "fig5_rprob", "fig6_depth", "fig8_tprob", "fig9_markov",
                       "fig12_history"}  # fmt: skip
    for figure in figures:
        assert (tmp_path / f"offloading_{figure}.png").stat().st_size > 1000
    with (tmp_path / "offloading.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(report.rows) + 3
    for row in rows:
        # Custom costs: no shipped DQN applies, so each point trained its own.
        assert row["dqn_source"] == "trained:1it"
        assert float(row["strong_only"]) <= float(row["clairvoyant"]) <= float(row["weak_only"])
        assert float(row["hindsight_unreachable"]) <= float(row["clairvoyant"]) + 1e-9
        assert np.isfinite(float(row["dqn"]))
        # Paired over the same streams: the mean difference is the difference of means.
        diff = float(row["dqn"]) - float(row["mdp"])
        assert float(row["dqn-mdp"]) == pytest.approx(diff, abs=2e-6)
        assert float(row["dqn-mdp_sem"]) >= 0
    # The Markov figures ran on Markov arrivals: their DQNs see gaps too.
    fig8 = [p for p in offloading.points(TINY) if p.figure == "fig8_tprob"]
    assert all(p.scenario.arrivals == "markov" for p in fig8)
    assert offloading.dqn_spec(fig8[0].scenario, 3).gaps == 2
    assert set(report.checks) and all(isinstance(v, bool) for v in report.checks.values())
    assert (tmp_path / "offloading_summary.json").is_file()


def test_shipped_dqns_are_used_only_for_their_own_costs_and_traces():
    point = offloading.Scenario(spread=0.1, rprob=0.1)
    source = "shipped:offloading_costs_top1.npz"
    card = offloading.shipped_dqn(point, 97, source)
    if card is None:
        pytest.skip("no shipped DQN for the default correlated case")
    assert offloading.shipped_dqn(point, 97, "other.npz") is None
    assert offloading.shipped_dqn(replace(point, rprob=0.3), 97, source) is None
    assert offloading.shipped_dqn(point, 5, source) is None
    # The same costs file given by its path finds the same card.
    assert offloading.shipped_dqn(point, 97, "edgebus/assets/offloading_costs_top1.npz") == card


def test_dqns_trained_on_other_costs_are_found_in_their_own_folder():
    """The Fashion-MNIST DQNs live apart from the shipped ones (a shapes camera must never
    pick one): only a sweep given their folder and their costs uses them."""
    from edgebus.codecs.assets import assets_dir

    folder = assets_dir() / "fashion"
    point = offloading.Scenario(spread=0.1, rprob=0.1)
    fashion = "edgebus/assets/offloading_costs_fashion_top1.npz"
    assert offloading.shipped_dqn(point, 97, fashion) is None
    card = offloading.shipped_dqn(point, 97, fashion, folder)
    assert card is not None and card.parent == folder
    assert offloading.shipped_dqn(point, 97, "shipped:offloading_costs_top1.npz", folder) is None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["experiment", "offloading", "--costs", "{bad}"], "cannot read it as npz"),
        (["experiment", "offloading", "--quick", "--figures", "fig7"], "--figures 'fig7'"),
        (["train", "dqn", "--trace", "zipf"], "--trace 'zipf': expected locreset or iid"),
        (["train", "dqn", "--gaps", "1"], "--gaps '1': expected two comma-separated ints"),
        (["train", "dqn", "--rate", "0.001"], "bucket rate r=0.001 is below 1/100"),
    ],
)
def test_bad_inputs_are_one_line_errors(tmp_path, args, message):
    bad = tmp_path / "bad.npz"
    bad.write_text("not an npz")
    args = [a.replace("{bad}", str(bad)) for a in args]
    result = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert any(line.startswith("error:") and message in line for line in lines), result.output
    assert "Traceback" not in result.output
