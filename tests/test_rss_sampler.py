"""The benchmarks' RSS sampler: peaks of running processes, an ended one skipped."""

from __future__ import annotations

import subprocess
import sys
import time

import psutil
import pytest

from edgebus.bench.rss_sampler import RssSampler

pytestmark = pytest.mark.timeout(30)


def test_it_keeps_each_process_peak_and_skips_one_that_ended():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    gone = psutil.Process(child.pid)  # a handle taken while it ran
    child.kill()
    child.wait(10)
    me = psutil.Process()
    sampler = RssSampler({"me": me, "gone": gone}, interval_s=0.01)
    sampler.start()
    ballast = bytearray(64 * 2**20)  # 64 MB resident while sampled
    ballast[::4096] = b"x" * len(ballast[::4096])
    time.sleep(0.2)
    sampler.stop()
    assert sampler.samples["me"] >= 2 and "gone" not in sampler.samples
    assert sampler.peak["me"] >= 64 * 2**20
    del ballast


def test_a_sampler_never_started_stops_at_once():
    sampler = RssSampler({"me": psutil.Process()})
    sampler.stop()
    assert sampler.peak == {} and sampler.samples == {}
