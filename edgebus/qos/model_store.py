"""The model pool on disk: what Algorithm 1 trained, read by the orchestrator at run time.

Layout (no torch needed to read it)::

    <pool>/pool.json              data set, CO accuracy, QoS rule, models, searches
    <pool>/<model_id>/*.onnx      the files of each deployable model
    <pool>/raw/classifier.onnx    the cloud-only (CO) classifier, for receivers of raw frames

`pool.json` keeps every trained model (`models`) and each search's trials in training
order (`searches`), from which the QoS-features map P of each configuration is rebuilt.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from edgebus.codecs.model_bundle import bundle_digest, verify_bundle
from edgebus.fashion_mnist import fashion_mnist_installed
from edgebus.messages import ModelBundle
from edgebus.qos.compression_search import QosRule, SearchError, Trial
from edgebus.qos.qos_map import QosMap
from edgebus.qos.qos_model import RAW, PoolModel

POOL_FILE = "pool.json"
# The `qos_pool` value that runs a coordinator without the QoS orchestrator.
POOL_OFF = "off"
# Shipped pools: ECO models of Fashion-MNIST (the paper's data, read from the installed IDX
# files), and of the accelerometer windows every machine can generate.
SHIPPED_FASHION_POOL = Path(str(resources.files("edgebus") / "assets" / "qos_pool_fashion"))
SHIPPED_ACCELEROMETER_POOL = Path(str(resources.files("edgebus") / "assets" / "qos_pool"))
LATENT_BYTES = 2  # float16 per latent value on the wire (codecs/dense_ae.py)


class PoolError(ValueError):
    """A missing or malformed model pool, or an unknown model id."""


@dataclass(frozen=True)
class StoredModel:
    model_id: str
    version: int
    configuration: str  # ECO or ECCD
    d: int
    accuracy: float
    psnr_db: float
    train_seconds: float
    sha256: str
    files: tuple[str, ...]


@dataclass
class ModelPool:
    root: Path
    dataset: str
    dim: int
    raw_item_bytes: int  # bytes per raw feature on the wire (CO)
    cloud_accuracy: float
    rule: QosRule
    models: dict[str, StoredModel] = field(default_factory=dict)
    searches: list[dict[str, Any]] = field(default_factory=list)
    # The CO classifier, served as model "raw": a receiver of raw frames classifies with it.
    # Kept apart from `models`, which are Algorithm 2's candidates.
    cloud: StoredModel | None = None

    @property
    def raw_bytes_per_frame(self) -> int:
        return self.dim * self.raw_item_bytes

    # -- reading ------------------------------------------------------------------------

    @classmethod
    def load(cls, root: Path) -> ModelPool:
        path = Path(root) / POOL_FILE
        if not path.is_file():
            raise PoolError(
                f"model pool {root}: no {POOL_FILE}; build one with `edgebus models search`"
            )
        try:
            data = json.loads(path.read_text())
            rule = QosRule(float(data["rule"]["tolerance"]), float(data["rule"]["step"]))
            models = {m["model_id"]: _stored(m) for m in data["models"]}
            cloud = data.get("cloud_classifier")
            return cls(
                Path(root), str(data["dataset"]), int(data["dim"]), int(data["raw_item_bytes"]),
                float(data["cloud_accuracy"]), rule, models, list(data.get("searches", [])),
                _stored(cloud) if cloud is not None else None,
            )  # fmt: skip
        except (ValueError, KeyError, TypeError, SearchError) as exc:
            raise PoolError(f"model pool {path}: malformed ({type(exc).__name__}: {exc})") from None

    def get(self, model_id: str) -> StoredModel:
        if model_id == RAW:
            if self.cloud is None:
                raise PoolError(
                    f"model pool {self.root} has no CO classifier for raw frames; rebuild it "
                    "with `edgebus models search`"
                )
            return self.cloud
        try:
            return self.models[model_id]
        except KeyError:
            known = ", ".join(sorted(self.models)) or "none"
            raise PoolError(f"model {model_id!r} is not in the pool (known: {known})") from None

    def pool_models(self) -> list[PoolModel]:
        return [
            PoolModel(
                m.model_id,
                m.configuration,
                m.d,
                self.dim,
                m.accuracy,
                m.psnr_db,
                LATENT_BYTES * m.d,
            )
            for m in sorted(self.models.values(), key=lambda m: (m.configuration, m.d))
        ]

    def qos_map(self, configuration: str) -> QosMap:
        trials = [Trial(m.d, m.accuracy, m.train_seconds) for m in self.models.values()
                  if m.configuration == configuration]  # fmt: skip
        return QosMap(self.rule, trials)

    def files(self, model_id: str) -> dict[str, bytes]:
        stored = self.get(model_id)
        folder = self.root / model_id
        try:
            return {name: (folder / name).read_bytes() for name in stored.files}
        except OSError as exc:
            raise PoolError(f"model {model_id}: cannot read its files ({exc})") from None

    def bundle(self, model_id: str) -> ModelBundle:
        """The model's bytes for a node, checked against the recorded sha256 first so a
        corrupted pool is caught here rather than on every node."""
        stored = self.get(model_id)
        files = self.files(model_id)
        verify_bundle(model_id, files, stored.sha256)
        return ModelBundle(
            model_id, stored.version, stored.sha256, stored.configuration, stored.d, files,
            {"dataset": self.dataset, "dim": self.dim, "accuracy": stored.accuracy,
             "raw_item_bytes": self.raw_item_bytes},
        )  # fmt: skip

    # -- writing ------------------------------------------------------------------------

    def add(
        self, model_id: str, configuration: str, d: int, accuracy: float, psnr_db: float,
        train_seconds: float, files: dict[str, bytes],
    ) -> StoredModel:  # fmt: skip
        """Write a model's files and record it; retraining an id bumps its version."""
        folder = self.root / model_id
        folder.mkdir(parents=True, exist_ok=True)
        for name, data in files.items():
            (folder / name).write_bytes(data)
        previous = self.models.get(model_id)
        stored = StoredModel(
            model_id, 1 if previous is None else previous.version + 1, configuration, d,
            accuracy, psnr_db, train_seconds, bundle_digest(files), tuple(sorted(files)),
        )  # fmt: skip
        self.models[model_id] = stored
        return stored

    def set_cloud_classifier(
        self, accuracy: float, train_seconds: float, files: dict[str, bytes]
    ) -> StoredModel:
        """Store the CO classifier (files: classifier.onnx) as model "raw"."""
        folder = self.root / RAW
        folder.mkdir(parents=True, exist_ok=True)
        for name, data in files.items():
            (folder / name).write_bytes(data)
        version = 1 if self.cloud is None else self.cloud.version + 1
        self.cloud = StoredModel(
            RAW, version, "CO", self.dim, accuracy, float("inf"), train_seconds,
            bundle_digest(files), tuple(sorted(files)),
        )  # fmt: skip
        self.cloud_accuracy = accuracy
        return self.cloud

    def save(self) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        data = {
            "dataset": self.dataset,
            "dim": self.dim,
            "raw_item_bytes": self.raw_item_bytes,
            "cloud_accuracy": self.cloud_accuracy,
            "rule": {"tolerance": self.rule.tolerance, "step": self.rule.step},
            "models": [
                {**asdict(m), "files": list(m.files)}
                for m in sorted(self.models.values(), key=lambda m: (m.configuration, m.d))
            ],
            "searches": self.searches,
        }
        if self.cloud is not None:
            data["cloud_classifier"] = {**asdict(self.cloud), "files": list(self.cloud.files)}
        path = self.root / POOL_FILE
        path.write_text(json.dumps(data, indent=1) + "\n")
        return path


def _stored(record: dict[str, Any]) -> StoredModel:
    return StoredModel(**{**record, "files": tuple(record["files"])})


def resolve_pool(configured: str, data_dir: str) -> Path:
    """The `qos_pool` setting when given, else `<data_dir>/qos_pool` once one was built
    there, else a pool shipped with the package: Fashion-MNIST's where its images are
    installed (a sensor needs them to stream), the accelerometer's otherwise."""
    if configured:
        return Path(configured)
    local = Path(data_dir) / "qos_pool"
    if (local / POOL_FILE).is_file():
        return local
    return SHIPPED_FASHION_POOL if fashion_mnist_installed() else SHIPPED_ACCELEROMETER_POOL


def pool_dataset(root: Path) -> str:
    """The data set a pool's models take (what a sensor streaming to it must read), from
    pool.json alone."""
    try:
        dataset = json.loads((root / POOL_FILE).read_text())["dataset"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise PoolError(f"model pool {root}: no readable {POOL_FILE} ({exc})") from None
    if not isinstance(dataset, str):
        raise PoolError(f"model pool {root}: 'dataset' must be a string, got {dataset!r}")
    return dataset


def model_id_for(dataset: str, configuration: str, d: int) -> str:
    return f"{dataset}-{configuration.lower()}-d{d}"
