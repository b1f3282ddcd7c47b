"""DCEI stream scheduling (thesis Ch. 5): the public face of the `dcei_*` modules.

K camera streams over M edge devices; each stream's detection runs on the device its camera
is mapped to (x_ik) and its re-ID may be offloaded to another device (y_jk).

- `dcei_model`: problem, placement, memory model, Eq. 5.2 (`stream_latencies`);
- `dcei_round`: one tracking round with queueing, the throughput we report;
- `dcei_memory`: which models fit where while a placement is built;
- `dcei_jstsh`: JSTSH (Algorithm 7) and the NMNO / WMNO / NMWO baselines.
"""

from __future__ import annotations

from edgebus.scheduling.dcei_jstsh import (
    RoundCost,
    cost_below,
    jstsh,
    map_detections,
    nmno,
    nmwo,
    offload_reid,
    round_cost,
    wmno,
)
from edgebus.scheduling.dcei_model import (
    DceiInfeasibleError,
    DceiInputError,
    DceiPlacement,
    DceiProblem,
    Device,
    Stream,
    check_placement,
    memory_use,
    stream_latencies,
)
from edgebus.scheduling.dcei_round import (
    RoundSchedule,
    round_throughput,
    simulate_round,
)

__all__ = [
    "DceiInfeasibleError",
    "DceiInputError",
    "DceiPlacement",
    "DceiProblem",
    "Device",
    "RoundCost",
    "RoundSchedule",
    "Stream",
    "check_placement",
    "cost_below",
    "jstsh",
    "map_detections",
    "memory_use",
    "nmno",
    "nmwo",
    "offload_reid",
    "round_cost",
    "round_throughput",
    "simulate_round",
    "stream_latencies",
    "wmno",
]
