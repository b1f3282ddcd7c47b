"""Decision time of the orchestrator (paper Fig. 13): N random QoS requests through Eq. 3 and
Algorithm 2 on a model pool, for growing N. Run: python benchmarks/bench_qos_decide.py POOL"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from edgebus.coordinator.orchestrator import decide_for_pool
from edgebus.messages import QosRequest
from edgebus.qos.model_store import ModelPool
from edgebus.qos.qos_model import LinearQosEstimator


def main(pool_dir: Path) -> None:
    pool = ModelPool.load(pool_dir)
    estimator = LinearQosEstimator()
    rng = np.random.default_rng(0)
    print(f"pool {pool_dir}: {len(pool.models)} models")
    for n in (250, 500, 1000, 2000, 4000):
        requests = [
            QosRequest(
                f"s{i}",
                float(rng.uniform(0.3, 0.95)),
                float(rng.uniform(1e3, 2e4)),
                float(rng.uniform(0, 1)),
                float(rng.uniform(0, 2048)),
                None if rng.random() < 0.7 else float(rng.uniform(10, 20)),
            )
            for i in range(n)
        ]
        start = time.perf_counter()
        for request in requests:
            decide_for_pool(pool, request, 2.0, estimator)
        elapsed = time.perf_counter() - start
        print(f"{n:5d} requests: {elapsed * 1000:8.1f} ms total, {elapsed / n * 1e6:6.1f} us each")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "edgebus-data/qos_pool"))
