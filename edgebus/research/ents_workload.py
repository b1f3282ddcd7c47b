"""The thesis' evaluation application, reconstructed, and seeded Poisson job arrivals.

The 10-module object-attribute DAG on a 1080p, 30 fps camera (per frame):

    source --250 KB JPEG--> decode --6.2 MB raw RGB--> preprocess --1.08 MB--> detect
    decode --6.2 MB--> crop <--2 KB boxes-- detect --2 KB--> track
    crop --40 KB--> attributes (ResNet-50)        crop --30 KB--> reid (ResNet-50)
    reid --32 KB--> associate <--2 KB-- track
    attributes --1 KB--> fuse <--1 KB-- associate;  fuse --1 KB--> publish

Workloads are 2 x multiply-accumulates for four people per frame: MobileNet-V2 SSDLite at
300x300 is 0.8 GMAC, ResNet-50 4.1 GMAC at 224x224 (attributes) and 2.7 GMAC at 256x128
(re-ID). The thesis' "frames of about 6 MB" are the decoded 1920x1080x3 frames; the camera
itself sends JPEG."""

from __future__ import annotations

import numpy as np

from edgebus.research.ents_model import Job, JobError, Task
from edgebus.research.ents_online import Arrival
from edgebus.research.topology import GB, GFLOPS, Network, Resources

KB = 1e3
MB = 1e6
RAW_FRAME = 1920 * 1080 * 3  # bytes of one decoded 1080p RGB frame
JPEG_FRAME = 250 * KB

# name: (GFLOP per frame, CPU cores, memory GB)
_MODULES: dict[str, tuple[float, float, float]] = {
    "decode": (0.2, 0.5, 0.2),
    "preprocess": (0.05, 0.25, 0.1),
    "detect": (1.6, 1.0, 0.5),
    "crop": (0.02, 0.25, 0.1),
    "attributes": (32.8, 1.5, 1.0),
    "reid": (21.6, 1.5, 1.0),
    "track": (0.001, 0.25, 0.05),
    "associate": (0.01, 0.25, 0.1),
    "fuse": (0.001, 0.25, 0.05),
    "publish": (0.001, 0.25, 0.05),
}

_DATA: dict[tuple[str, str], float] = {
    ("decode", "preprocess"): RAW_FRAME,
    ("decode", "crop"): RAW_FRAME,
    ("preprocess", "detect"): 300 * 300 * 3 * 4,
    ("detect", "crop"): 2 * KB,
    ("detect", "track"): 2 * KB,
    ("crop", "attributes"): 40 * KB,
    ("crop", "reid"): 30 * KB,
    ("reid", "associate"): 4 * 2048 * 4,
    ("track", "associate"): 2 * KB,
    ("attributes", "fuse"): 1 * KB,
    ("associate", "fuse"): 1 * KB,
    ("fuse", "publish"): 1 * KB,
}


def object_attribute_job(name: str, source: str, frames: int = 150) -> Job:
    """One camera's object-attribute pipeline, fed at node `source`."""
    tasks = tuple(
        Task(module, gflop * GFLOPS, Resources(cpu=cpu, memory=memory * GB))
        for module, (gflop, cpu, memory) in _MODULES.items()
    )
    return Job(name, tasks, dict(_DATA), source, JPEG_FRAME, frames=frames, frame_rate=30.0)


def poisson_arrivals(
    network: Network, count: int, rate: float, seed: int, frames: int = 150
) -> list[Arrival]:
    """`count` object-attribute jobs arriving as a Poisson process of `rate` jobs/s, each
    with its camera on a uniformly drawn node."""
    if count < 1:
        raise JobError(f"count must be >= 1 job, got {count}")
    if not rate > 0:
        raise JobError(f"rate must be > 0 jobs/s, got {rate}")
    rng = np.random.default_rng(seed)
    times = np.cumsum(rng.exponential(1.0 / rate, size=count))
    sources = rng.integers(0, network.size, size=count)
    return [
        Arrival(float(at), object_attribute_job(f"job{i:03d}", network.nodes[src].name, frames))
        for i, (at, src) in enumerate(zip(times, sources, strict=True))
    ]
