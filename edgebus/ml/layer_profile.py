"""Per-layer cost profile of the split-training models (EdgeSplit, thesis Ch. 4).

For each "layer" (the unit a split point may fall after: a conv or linear with its
activation and pooling) this measures, for one batch on this CPU with one torch thread:

- forward and backward seconds (median of `repeats` after a warm-up);
- output bytes O (float32, whole batch): what a device sends up and gets a gradient for;
- parameter bytes of the layer (EdgeSplit's P_j is their cumulative sum);
- saved bytes: the tensors autograd keeps from the forward for the backward (parameters
  excluded), which is what a server holds per client between F and B (SplitPipe).

The JSON it writes is shipped as `edgebus/assets/layer_profiles.json`, so the coordinator
reads costs without importing torch.

    python -m edgebus.ml.layer_profile --out edgebus/assets/layer_profiles.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edgebus.ml.errors import TrainingError

PROFILE_FORMAT = 1
DEFAULT_BATCH = 32
DEFAULT_REPEATS = 30
WARMUP = 3


def lenet5() -> tuple[list[tuple[str, nn.Module]], tuple[int, ...]]:
    """LeNet-5 for 28x28 grey images (padding 2 on conv1 keeps the classic 32x32 geometry)."""
    layers = [
        ("conv1", nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2))),
        ("conv2", nn.Sequential(nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2))),
        ("fc1", nn.Sequential(nn.Flatten(), nn.Linear(16 * 5 * 5, 120), nn.ReLU())),
        ("fc2", nn.Sequential(nn.Linear(120, 84), nn.ReLU())),
        ("fc3", nn.Linear(84, 10)),
    ]
    return layers, (1, 28, 28)


def small_vgg(width: int = 32) -> tuple[list[tuple[str, nn.Module]], tuple[int, ...]]:
    """A VGG-style net for 32x32 RGB: three blocks of two 3x3 convs (width, 2w, 4w) with a
    2x2 pool closing each block, then two linear layers; 8 split-able layers."""

    def conv(cin: int, cout: int, pool: bool) -> nn.Module:
        parts: list[nn.Module] = [nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU()]
        if pool:
            parts.append(nn.MaxPool2d(2))
        return nn.Sequential(*parts)

    w = width
    layers = [
        ("conv1", conv(3, w, False)),
        ("conv2", conv(w, w, True)),
        ("conv3", conv(w, 2 * w, False)),
        ("conv4", conv(2 * w, 2 * w, True)),
        ("conv5", conv(2 * w, 4 * w, False)),
        ("conv6", conv(4 * w, 4 * w, True)),
        ("fc1", nn.Sequential(nn.Flatten(), nn.Linear(4 * w * 4 * 4, 256), nn.ReLU())),
        ("fc2", nn.Linear(256, 10)),
    ]
    return layers, (3, 32, 32)


MODELS: dict[str, Callable[[], tuple[list[tuple[str, nn.Module]], tuple[int, ...]]]] = {
    "lenet": lenet5,
    "vgg": small_vgg,
}


def _saved_bytes(layer: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Run the layer once and count the distinct storages autograd saved for the backward,
    leaving out the layer's own parameters (they are resident anyway)."""
    param_storages = {p.untyped_storage().data_ptr() for p in layer.parameters()}
    storages: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in param_storages:
            storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        out = layer(x)
    return out, sum(storages.values())


def cpu_name() -> str:
    """The CPU's model name, so a profile says which machine its factors are relative to."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def profile_layers(
    layers: Sequence[tuple[str, nn.Module]],
    input_shape: tuple[int, ...],
    batch: int,
    repeats: int,
) -> list[dict[str, Any]]:
    """Time each layer on its real input (the previous layer's output) for one batch."""
    if batch < 1 or repeats < 1:
        raise TrainingError(f"profile: batch and repeats must be >= 1, got {batch}, {repeats}")
    generator = torch.Generator().manual_seed(0)
    x = torch.rand((batch, *input_shape), generator=generator)
    rows: list[dict[str, Any]] = []
    for index, (name, layer) in enumerate(layers):
        # A device's first layer needs no input gradient (the input is data); every later
        # layer does, because in split training its input gradient is what goes back.
        source = x.detach().requires_grad_(index > 0)
        out, saved = _saved_bytes(layer, source)
        grad = torch.ones_like(out)
        forward_s: list[float] = []
        backward_s: list[float] = []
        for attempt in range(WARMUP + repeats):
            start = time.perf_counter()
            out = layer(source)
            middle = time.perf_counter()
            out.backward(grad)
            end = time.perf_counter()
            if attempt >= WARMUP:
                forward_s.append(middle - start)
                backward_s.append(end - middle)
        rows.append(
            {
                "name": name,
                "forward_s": statistics.median(forward_s),
                "backward_s": statistics.median(backward_s),
                "output_bytes": out.numel() * out.element_size(),
                "param_bytes": sum(p.numel() * p.element_size() for p in layer.parameters()),
                "saved_bytes": saved,
            }
        )
        x = out.detach()
    return rows


def profile_models(
    out: Path,
    batch: int = DEFAULT_BATCH,
    repeats: int = DEFAULT_REPEATS,
    models: Sequence[str] = ("lenet", "vgg"),
) -> Path:
    """Profile `models` (names in MODELS) and write the JSON profile to `out`."""
    unknown = [name for name in models if name not in MODELS]
    if unknown:
        raise TrainingError(f"profile models {unknown}: expected names in {sorted(MODELS)}")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one thread: device factors are relative to one core
    torch.manual_seed(0)
    try:
        profiles = {}
        for name in models:
            layers, input_shape = MODELS[name]()
            profiles[name] = {
                "input_shape": list(input_shape),
                "layers": profile_layers(layers, input_shape, batch, repeats),
            }
    finally:
        torch.set_num_threads(threads)
    document = {
        "format": PROFILE_FORMAT,
        "batch": batch,
        "repeats": repeats,
        "threads": 1,
        "cpu": cpu_name(),
        "torch": torch.__version__,
        "date": dt.date.today().isoformat(),
        "dtype": "float32",
        "units": {"time": "s per batch", "size": "bytes per batch"},
        "models": profiles,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(document, indent=1) + "\n")
    return out


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Profile LeNet and a small VGG per layer.")
    parser.add_argument("--out", type=Path, required=True, help="JSON file to write")
    parser.add_argument("--batch", type=int, default=DEFAULT_BATCH)
    parser.add_argument("--repeats", type=int, default=DEFAULT_REPEATS)
    args = parser.parse_args(argv)
    path = profile_models(args.out, batch=args.batch, repeats=args.repeats)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
