"""The edge network the ENTS scheduler plans over: nodes, links and candidate routes.

Units (SI, used by every ENTS module): compute in FLOP/s, workloads in FLOP, data in bytes,
bandwidth in bytes/s (`mbps` converts), CPU in cores, memory in bytes, time in seconds.
Links are undirected and both directions share one capacity B_l, as in the thesis' G = (V, E).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from itertools import islice, pairwise

import networkx as nx
import numpy as np
from scipy import sparse

RESOURCE_KINDS = ("cpu", "memory")


class TopologyError(ValueError):
    """A network description that cannot be planned over."""


class NoRouteError(ValueError):
    """Two nodes that must exchange data have no path between them."""


def mbps(megabits_per_second: float) -> float:
    """Megabits per second to bytes per second (the unit of every bandwidth here)."""
    return megabits_per_second * 1e6 / 8.0


@dataclass(frozen=True)
class Resources:
    """A resource vector: CPU cores and memory bytes (the two the Kubernetes scorers balance)."""

    cpu: float
    memory: float

    def __post_init__(self) -> None:
        if not (self.cpu >= 0 and self.memory >= 0):
            raise TopologyError(f"resources must be non-negative, got {self}")

    def as_array(self) -> np.ndarray:
        return np.array([self.cpu, self.memory], dtype=float)


@dataclass(frozen=True)
class EdgeNode:
    """Node j: compute PS_j (FLOP/s) and resource capacity R^j_max."""

    name: str
    compute: float
    capacity: Resources

    def __post_init__(self) -> None:
        if not self.name:
            raise TopologyError("a node needs a non-empty name")
        if not self.compute > 0:
            raise TopologyError(f"node {self.name}: compute must be > 0 FLOP/s, got {self.compute}")


@dataclass(frozen=True)
class Link:
    """Undirected link l between nodes u and v with capacity B_l (bytes/s)."""

    u: str
    v: str
    bandwidth: float

    def __post_init__(self) -> None:
        if self.u == self.v:
            raise TopologyError(f"link {self.u}-{self.v}: a link needs two distinct nodes")
        if not self.bandwidth > 0:
            raise TopologyError(
                f"link {self.u}-{self.v}: bandwidth must be > 0 bytes/s, got {self.bandwidth}"
            )


@dataclass(frozen=True)
class Route:
    """A loop-free path: node indices from source to destination and the link indices on it."""

    nodes: tuple[int, ...]
    links: tuple[int, ...]


class Network:
    """Immutable graph of edge nodes; what changes during scheduling (available resources,
    residual bandwidth) lives in arrays indexed like `nodes` and `links`."""

    def __init__(self, nodes: Sequence[EdgeNode], links: Sequence[Link]) -> None:
        if not nodes:
            raise TopologyError("a network needs at least one node")
        names = [node.name for node in nodes]
        if len(set(names)) != len(names):
            raise TopologyError(f"node names must be unique, got {names}")
        self.nodes: tuple[EdgeNode, ...] = tuple(nodes)
        self.links: tuple[Link, ...] = tuple(links)
        self.index: dict[str, int] = {name: i for i, name in enumerate(names)}
        self.graph = nx.Graph()
        self.graph.add_nodes_from(range(len(nodes)))
        for number, link in enumerate(self.links):
            for end in (link.u, link.v):
                if end not in self.index:
                    raise TopologyError(f"link {link.u}-{link.v} names unknown node {end!r}")
            u, v = self.index[link.u], self.index[link.v]
            if self.graph.has_edge(u, v):
                raise TopologyError(f"link {link.u}-{link.v} is listed twice")
            self.graph.add_edge(u, v, index=number)
        self.compute = np.array([node.compute for node in self.nodes], dtype=float)
        self.capacity = np.array([node.capacity.as_array() for node in self.nodes])
        self.bandwidth = np.array([link.bandwidth for link in self.links], dtype=float)
        self._candidates: dict[tuple[int, int, int], list[Route]] = {}

    @property
    def size(self) -> int:
        return len(self.nodes)

    def node_index(self, name: str) -> int:
        if name not in self.index:
            raise TopologyError(f"unknown node {name!r}; the network has {list(self.index)}")
        return self.index[name]

    def route_of(self, node_path: Sequence[int]) -> Route:
        for a, b in pairwise(node_path):
            if not self.graph.has_edge(a, b):
                raise NoRouteError(
                    f"no link between {self.nodes[a].name} and {self.nodes[b].name} on the route"
                )
        links = tuple(self.graph.edges[a, b]["index"] for a, b in pairwise(node_path))
        return Route(tuple(node_path), links)

    def candidate_routes(self, src: int, dst: int, k: int) -> list[Route]:
        """The k shortest loop-free routes by hop count (fewer if the graph has fewer)."""
        if k < 1:
            raise TopologyError(f"k (candidate paths per flow) must be >= 1, got {k}")
        key = (src, dst, k)
        if key not in self._candidates:
            try:
                paths = list(islice(nx.shortest_simple_paths(self.graph, src, dst), k))
            except nx.NetworkXNoPath:
                raise NoRouteError(
                    f"no path from {self.nodes[src].name} to {self.nodes[dst].name}"
                ) from None
            self._candidates[key] = [self.route_of(path) for path in paths]
        return self._candidates[key]

    def shortest_route(self, src: int, dst: int) -> Route:
        path = self._hop_paths.get(src, {}).get(dst)
        if path is None:
            raise NoRouteError(f"no path from {self.nodes[src].name} to {self.nodes[dst].name}")
        return self.route_of(path)

    @cached_property
    def _hop_paths(self) -> dict[int, dict[int, list[int]]]:
        return dict(nx.all_pairs_shortest_path(self.graph))

    @cached_property
    def _pair_links(self) -> tuple[sparse.csr_matrix, np.ndarray]:
        """(pairs x links) incidence of every pair's shortest route, and its hop counts."""
        size = self.size
        rows: list[int] = []
        cols: list[int] = []
        hops = np.zeros(size * size)
        for src, targets in self._hop_paths.items():
            for dst, path in targets.items():
                links = self.route_of(path).links
                rows.extend([src * size + dst] * len(links))
                cols.extend(links)
                hops[src * size + dst] = len(links)
        incidence = sparse.csr_matrix(
            (np.ones(len(rows)), (rows, cols)), shape=(size * size, max(1, len(self.links)))
        )
        return incidence, hops

    def mean_route_bandwidth(self, bandwidth: np.ndarray) -> np.ndarray:
        """B̄ of Alg. 1: (M, M) mean of `bandwidth` over the links of each pair's shortest
        route; inf on the diagonal (no transfer) and 0 between disconnected nodes."""
        incidence, hops = self._pair_links
        padded = np.zeros(incidence.shape[1])
        padded[: len(bandwidth)] = bandwidth
        total = incidence @ padded
        mean = np.divide(total, hops, out=np.zeros_like(total), where=hops > 0)
        mean = mean.reshape(self.size, self.size)
        np.fill_diagonal(mean, np.inf)
        return mean


@dataclass(frozen=True)
class NodeClass:
    """A kind of edge device the random topologies draw from."""

    name: str
    compute: float
    capacity: Resources
    share: float


GFLOPS = 1e9
GB = 1e9

# Effective DNN-inference speeds, not peak FLOPS: what a Jetson-Nano-, Xavier-NX- and
# AGX/NUC-class box sustains on batch-1 CNNs.
DEFAULT_NODE_CLASSES: tuple[NodeClass, ...] = (
    NodeClass("small", 50 * GFLOPS, Resources(cpu=4, memory=4 * GB), 0.4),
    NodeClass("medium", 150 * GFLOPS, Resources(cpu=8, memory=8 * GB), 0.4),
    NodeClass("large", 400 * GFLOPS, Resources(cpu=16, memory=32 * GB), 0.2),
)


def random_network(
    node_count: int,
    mean_bandwidth: float,
    seed: int,
    degree: float = 3.0,
    spread: float = 0.5,
    classes: Sequence[NodeClass] = DEFAULT_NODE_CLASSES,
) -> Network:
    """A connected random topology with average degree `degree`: a random spanning tree
    plus random extra links; link bandwidth uniform on [1-spread, 1+spread] x mean."""
    if node_count < 2:
        raise TopologyError(f"node_count must be >= 2, got {node_count}")
    if not mean_bandwidth > 0:
        raise TopologyError(f"mean_bandwidth must be > 0 bytes/s, got {mean_bandwidth}")
    if not 0 <= spread < 1:
        raise TopologyError(f"spread must be in [0, 1), got {spread}")
    if not 0 < degree <= node_count - 1:
        raise TopologyError(f"degree must be in (0, {node_count - 1}], got {degree}")
    if not classes:
        raise TopologyError("classes must name at least one node class")
    rng = np.random.default_rng(seed)
    order = rng.permutation(node_count)
    edges = {
        tuple(sorted((int(order[i]), int(order[rng.integers(0, i)])))) for i in range(1, node_count)
    }
    target = max(node_count - 1, round(degree * node_count / 2))
    while len(edges) < target:
        u, v = (int(x) for x in rng.choice(node_count, size=2, replace=False))
        edges.add((min(u, v), max(u, v)))
    shares = np.array([c.share for c in classes], dtype=float)
    kinds = rng.choice(len(classes), size=node_count, p=shares / shares.sum())
    nodes = [
        EdgeNode(f"n{i}", classes[kind].compute, classes[kind].capacity)
        for i, kind in enumerate(kinds)
    ]
    draws = rng.uniform(1 - spread, 1 + spread, size=len(edges))
    links = [
        Link(f"n{u}", f"n{v}", float(mean_bandwidth * draw))
        for (u, v), draw in zip(sorted(edges), draws, strict=True)
    ]
    return Network(nodes, links)
