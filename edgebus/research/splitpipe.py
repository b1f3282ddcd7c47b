"""SplitPipe's server memory (thesis Ch. 4): which layers the server loads, and the peak
memory of one step (every split client sends one batch) under two task orders.

The server loads only the union of the segments the clients' split points need: layers
min_i(j_i)+1..L, one copy of their weights plus their gradients. Client i's forward on the
server keeps what autograd saves for the backward of layers j_i+1..L (the profile's saved
bytes, received activation included) until that client's backward runs; the backward
needs, on top, a gradient in and a gradient out of its widest layer.

- FIFO (F3 F2 F1 B3 B2 B1): every forward runs before any backward, so all clients' saved
  activations are held at once.
- Backward-first (F3 B3 F2 B2 F1 B1): a waiting backward runs before the next forward, so
  at most one client's activations are held.

A client at split L (fully local) sends nothing and takes no server memory.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from edgebus.research.edgesplit_profile import EdgeSplitError, ModelProfile

Task = tuple[Literal["F", "B"], int]


@dataclass(frozen=True)
class ClientFootprint:
    """Bytes one client's step costs the server: held from its forward to its backward, and
    held only while its backward runs."""

    activation_bytes: int
    gradient_bytes: int


def _check(profile: ModelProfile, splits: Sequence[int]) -> None:
    if not splits:
        raise EdgeSplitError("splits: expected at least one client's split point, got none")
    bad = [
        s
        for s in splits
        if isinstance(s, bool) or not isinstance(s, int | np.integer) or not 1 <= s <= profile.depth
    ]
    if bad:
        raise EdgeSplitError(f"splits {list(splits)}: expected layer indices 1..{profile.depth}")


def server_layers(profile: ModelProfile, splits: Sequence[int]) -> range:
    """1-based indices of the layers the server loads: the union of j_i+1..L."""
    _check(profile, splits)
    return range(min(splits) + 1, profile.depth + 1)


def server_weight_bytes(profile: ModelProfile, splits: Sequence[int]) -> int:
    """Weights of the union segment (one shared copy)."""
    return sum(profile.layers[k - 1].param_bytes for k in server_layers(profile, splits))


def separate_weight_bytes(profile: ModelProfile, splits: Sequence[int]) -> int:
    """Weights if each client's segment j_i+1..L were loaded as its own copy (for comparison)."""
    _check(profile, splits)
    return sum(layer.param_bytes for s in splits for layer in profile.layers[s:])


def client_footprints(profile: ModelProfile, splits: Sequence[int]) -> list[ClientFootprint]:
    _check(profile, splits)
    outputs = [layer.output_bytes for layer in profile.layers]
    footprints = []
    for split in splits:
        server = range(split, profile.depth)  # 0-based server layers
        activation = sum(profile.layers[k].saved_bytes for k in server)
        gradient = max((outputs[k - 1] + outputs[k] for k in server), default=0)
        footprints.append(ClientFootprint(activation, gradient))
    return footprints


def fifo_order(clients: int) -> list[Task]:
    """F for every client in arrival order, then B in the same order."""
    return [("F", i) for i in range(clients)] + [("B", i) for i in range(clients)]


def backward_first_order(clients: int) -> list[Task]:
    """Each client's backward right after its forward."""
    return [task for i in range(clients) for task in (("F", i), ("B", i))]


def peak_memory(profile: ModelProfile, splits: Sequence[int], order: Sequence[Task]) -> int:
    """Peak server bytes over one step run in `order` (each client's F before its B, once)."""
    footprints = client_footprints(profile, splits)
    tasks = sorted(
        ((str(kind), int(client)) for kind, client in order),
        key=lambda task: (task[1], task[0] == "B"),
    )
    if tasks != backward_first_order(len(splits)):
        raise EdgeSplitError(
            f"task order: expected one F and one B per client 0..{len(splits) - 1}, got {order}"
        )
    if any(order.index(("B", i)) < order.index(("F", i)) for i in range(len(splits))):
        raise EdgeSplitError("task order: a client's backward runs before its forward")
    base = 2 * server_weight_bytes(profile, splits)  # weights and their gradients
    held = 0
    peak = base
    for kind, client in order:
        footprint = footprints[client]
        if kind == "F":
            held += footprint.activation_bytes
            peak = max(peak, base + held)
        else:
            peak = max(peak, base + held + footprint.gradient_bytes)
            held -= footprint.activation_bytes
    return peak


def peak_memory_fifo(profile: ModelProfile, splits: Sequence[int]) -> int:
    return peak_memory(profile, splits, fifo_order(len(splits)))


def peak_memory_backward_first(profile: ModelProfile, splits: Sequence[int]) -> int:
    return peak_memory(profile, splits, backward_first_order(len(splits)))
