"""Validated inputs of the offloading simulation and of `edgebus train dqn`: the scenario
from command-line style options, and the costs file (the shipped one by default)."""

from __future__ import annotations

from pathlib import Path

from edgebus.policies.costs import CostData, load_costs
from edgebus.policies.evaluate import Scenario
from edgebus.policies.runtime import shipped_costs_path
from edgebus.policies.token_bucket import BucketParams


def _pair(text: str, flag: str, kind: type) -> tuple:
    parts = [p.strip() for p in text.split(",")]
    try:
        values = tuple(kind(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) != 2:
        raise ValueError(f"{flag} {text!r}: expected two comma-separated {kind.__name__}s")
    return values


def scenario_from_options(
    rate: float,
    depth: float,
    trace: str,
    spread: float,
    rprob: float,
    arrivals: str,
    gaps: str = "1,3",
    tprob: str = "0.001,0.0005",
    streams: int = 100,
    length: int = 10_000,
    seed: int = 0,
) -> Scenario:
    """A validated scenario from command-line style options (errors name the flag)."""
    if trace not in ("locreset", "iid"):
        raise ValueError(f"--trace {trace!r}: expected locreset or iid")
    if arrivals not in ("periodic", "markov"):
        raise ValueError(f"--arrivals {arrivals!r}: expected periodic or markov")
    if not 0 <= spread <= 1:
        raise ValueError(f"--spread {spread}: expected a value in [0, 1]")
    if not 0 <= rprob <= 1:
        raise ValueError(f"--rprob {rprob}: expected a value in [0, 1]")
    gap1, gap2 = _pair(gaps, "--gaps", int)
    tprob1, tprob2 = _pair(tprob, "--tprob", float)
    if gap1 < 1 or gap2 < 1:
        raise ValueError(f"--gaps {gaps!r}: expected gaps >= 1 slot")
    if not (0 < tprob1 <= 1 and 0 < tprob2 <= 1):
        raise ValueError(f"--tprob {tprob!r}: expected probabilities in (0, 1]")
    BucketParams.from_rate(rate, depth)  # a bad r or b fails here, with its own message
    return Scenario(
        rate=rate,
        depth=depth,
        trace=trace,
        spread=spread,
        rprob=rprob,
        arrivals=arrivals,
        gap1=gap1,
        gap2=gap2,
        tprob1=tprob1,
        tprob2=tprob2,
        streams=streams,
        length=length,
        seed=seed,
    )


def read_costs(path: Path | None) -> tuple[CostData, str]:
    source = path if path is not None else shipped_costs_path()
    return load_costs(source), str(source if path is not None else f"shipped:{source.name}")
