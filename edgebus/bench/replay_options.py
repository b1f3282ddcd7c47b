"""The replay benchmarks' shared options (bench_replay.py, bench_edge_floor.py): where the
results go, the rates, the period and the seconds per step; checked, then made into one
replay plan per rate."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from edgebus.bench.replay import ReplayPlan


class OptionError(ValueError):
    """An option out of range; its message is one line naming the option."""


def add_replay_arguments(parser: argparse.ArgumentParser, rates: str) -> None:
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--rates", default=rates, help="Frames/s, comma-separated.")
    parser.add_argument("--period-ms", type=int, default=500)
    parser.add_argument("--duration", type=float, default=15.0, help="Seconds per rate.")


def replay_plans(args: argparse.Namespace) -> list[ReplayPlan]:
    """One plan per rate; rate = cameras / T, so each rate is rounded to whole cameras."""
    try:
        rates = [float(r) for r in args.rates.split(",") if r]
    except ValueError:
        raise OptionError(f"--rates {args.rates!r}: expected numbers") from None
    if not rates or min(rates) <= 0 or args.period_ms <= 0 or args.duration <= 0:
        raise OptionError("--rates, --period-ms and --duration must be positive")
    period_ms, duration_s = args.period_ms, args.duration
    return [
        ReplayPlan(max(1, math.floor(rate * period_ms / 1000.0 + 0.5)), period_ms, duration_s)
        for rate in rates
    ]
