"""One Settings object, layered: TOML file < EDGEBUS_* environment < CLI flags.

Every layer goes through the same validation, so a bad value names its key and
its source in one line, whichever layer it came from.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import socket
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ENV_PREFIX = "EDGEBUS_"
ROLES = ("camera", "edge", "cloud", "coordinator")
MQTT_CLIENTS = ("gmqtt", "aiomqtt", "paho")
PROTOCOLS = ("auto", "5", "3.1.1")
LOG_LEVELS = ("debug", "info", "warning", "error")
OFFLOAD_MODES = ("off", "never", "always", "baseline", "mdp", "dqn")
SCHEDULERS = ("off", "jstsh")
# The edge's classifier: the shipped one for the procedural shapes (64 px), the ImageNet-1k
# one for real photos (224 px, built at set-up), Fashion-MNIST's (28 px), or a card file
# of another. The camera's weak model for offloading: the shapes' or Fashion-MNIST's.
CLASSIFIERS = ("strong", "imagenet", "fashion_strong")
WEAK_CLASSIFIERS = ("weak", "fashion_weak")
_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
_STORE_URL = re.compile(r"^(sqlite|postgresql(\+psycopg)?)://")
_CODEC = re.compile(
    r"^(pnc(:[A-Za-z0-9_.-]+)?|raw|qos|(pjpeg|jpeg)\d{0,3}|webp(\d{1,3})?(m[0-6])?)$"
)
_LINK = re.compile(
    r"^(off|((none|light|heavy|switching|stepped)(:\d+(\.\d+)?)?)|\d+(\.\d+)?|.+\.csv)$"
)
_SOURCE = re.compile(r"^(synthetic|accelerometer|shapes28|fashion-mnist|folder:.+|video:.+)$")


class ConfigError(ValueError):
    """A configuration key or value that cannot be used; the message is one line."""


def _default_node_id() -> str:
    host = re.sub(r"[^A-Za-z0-9_.-]", "-", socket.gethostname().split(".")[0]) or "host"
    return f"{host}-{os.getpid()}"


@dataclass(slots=True)
class Settings:
    site: str = "lab"
    role: str = "edge"
    node_id: str = field(default_factory=_default_node_id)
    broker: str = "mqtt://127.0.0.1:1883"
    mqtt_client: str = "gmqtt"
    protocol: str = "auto"
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    tls_insecure: bool = False
    keepalive_s: int = 30
    heartbeat_s: float = 5.0
    reconnect_min_s: float = 0.2
    reconnect_max_s: float = 10.0
    queue_limit: int = 10_000
    # QoS 1 messages in flight on MQTT 3.1.1 (MQTT 5 follows the broker's Receive Maximum)
    inflight_window: int = 20
    # How long the broker keeps a camera's, edge's or cloud's session (its queued QoS 1
    # messages) while the node is away; 0 = clean sessions.
    session_expiry_s: int = 3600
    # A camera records a frame dropped when no edge answered for it this long; an edge
    # decides only frames it first sees within half of it.
    outcome_timeout_s: float = 30.0
    frame_period_ms: int = 500
    frame_width: int = 64
    frame_height: int = 64
    # camera pipeline: 0 = one codec unit per chunk, else byte blocks of this size
    chunk_bytes: int = 0
    codec: str = "pnc"  # pnc[:model] | pjpeg[Q] | jpeg[Q] | webp[Q][mM] | raw | qos
    link: str = "off"  # off | none | light | heavy | switching | stepped | <bytes/s> | <file>.csv
    source: str = "synthetic"  # synthetic | folder:<dir> | video:<file> | a flat set
    data_dir: str = "./edgebus-data"
    log_level: str = "info"
    # storage: local stores live under data_dir; "" global URL = SQLite there too
    store_enabled: bool = True
    store_flush_ms: int = 50
    sync_batch_rows: int = 500
    sync_interval_s: float = 10.0
    sync_ack_timeout_s: float = 5.0
    sync_window: int = 8
    global_store_url: str = ""
    retention_days: float = 7.0
    retention_interval_s: float = 3600.0
    # QoS orchestrator: model pool folder; "" = <data_dir>/qos_pool if built there, else
    # the shipped accelerometer pool; "off" = no orchestrator
    qos_pool: str = ""
    coordinator_id: str = "coordinator"  # whose `model` service serves pool models
    drift_threshold: float = 0.0  # camera, ECCD models: Eq. 2 alert level; 0 = off
    # collaborative scheduling
    schedule: str = "off"  # coordinator: off | jstsh (map cameras to edges)
    scheduled: bool = False  # camera, edge: follow the coordinator's sched/policy
    schedule_period_s: float = 10.0  # coordinator: replan at least this often
    zone: str = ""  # camera, edge: the site it is at; scheduled only within its zone
    peer_links: str = ""  # camera: per-edge link rates, "edge-1=6000,edge-2=2400" (bytes/s)
    edge_capacity_fps: float = 0.0  # edge: frames/s it classifies; 0 = measured at start
    edge_downlink_bps: float = 0.0  # edge: ingress bytes/s shared by its cameras; 0 = no cap
    classifier: str = "strong"  # edge: strong | imagenet | <card>.json
    # token-bucket offloading; off = every frame to the edge, cut at its deadline
    offload: str = "off"  # off | never | always | baseline | mdp | dqn
    offload_rate: float = 0.1  # tokens per frame slot (r)
    offload_bucket: float = 4.0  # bucket depth in tokens (b)
    offload_policy: str = ""  # DQN card (.json); "" = the shipped one for the bucket
    offload_costs: str = ""  # costs npz with its fitted metric; "" = the shipped one
    # camera's weak model; "" costs and policy are then the ones shipped for its pair
    weak_classifier: str = "weak"  # weak | fashion_weak | <card>.json
    # Prometheus /metrics of this node; 0 = off (`up`: node i gets metrics_port + i)
    metrics_port: int = 0
    metrics_host: str = "127.0.0.1"

    def validate(self) -> Settings:
        for name, rule in _RULES.items():
            problem = rule(getattr(self, name))
            if problem:
                raise ConfigError(f"{name}: {problem}")
        if self.reconnect_min_s > self.reconnect_max_s:
            raise ConfigError("reconnect_min_s must not exceed reconnect_max_s")
        return self


def _one_of(options: tuple[str, ...]) -> Callable[[Any], str | None]:
    return lambda v: None if v in options else f"expected one of {', '.join(options)}, got {v!r}"


def _positive(v: Any) -> str | None:
    return None if 0 < v < math.inf else f"expected a positive number, got {v!r}"


def _tokens_per_slot(v: Any) -> str | None:
    if 0 < v <= 1:
        return None
    return f"expected tokens per frame slot in (0, 1] (an offload costs one token), got {v!r}"


def _name(v: Any) -> str | None:
    return None if _NAME.match(v) else f"expected letters, digits, '_', '.', '-', got {v!r}"


def _store_url(v: Any) -> str | None:
    if not v or _STORE_URL.match(v):
        return None
    return f"expected sqlite:///path or postgresql+psycopg://user@host:port/db, got {v!r}"


def _matches(pattern: re.Pattern[str], expected: str) -> Callable[[Any], str | None]:
    return lambda v: None if pattern.match(v) else f"expected {expected}, got {v!r}"


def _non_negative(v: Any) -> str | None:
    return None if 0 <= v < math.inf else f"expected 0 or a positive number, got {v!r}"


def _port(v: Any) -> str | None:
    return None if 0 <= v <= 65535 else f"expected a TCP port 1-65535, or 0 for off, got {v!r}"


def _non_empty(v: Any) -> str | None:
    return None if str(v).strip() else "expected a non-empty path"


def _classifier(v: Any) -> str | None:
    if v in CLASSIFIERS or (str(v).endswith(".json") and Path(v).is_file()):
        return None
    return f"expected {', '.join(CLASSIFIERS)} or an existing classifier card (.json), got {v!r}"


def _weak_classifier(v: Any) -> str | None:
    if v in WEAK_CLASSIFIERS or (str(v).endswith(".json") and Path(v).is_file()):
        return None
    return (
        f"expected {', '.join(WEAK_CLASSIFIERS)} or an existing classifier card (.json), got {v!r}"
    )


def _readable_or_empty(v: Any) -> str | None:
    return None if not v or Path(v).is_file() else f"file {v!r} does not exist"


def parse_peer_links(spec: str) -> dict[str, float]:
    """`edge-1=6000,edge-2=2400` (bytes/s per edge); a bad item is one line naming it."""
    rates: dict[str, float] = {}
    for item in (part.strip() for part in spec.split(",")):
        if not item:
            continue
        peer, sep, value = item.partition("=")
        try:
            rate = float(value)
        except ValueError:
            rate = -1.0
        if not sep or not _NAME.match(peer.strip()) or not rate > 0:
            raise ValueError(f"peer_links item {item!r}: expected <edge>=<bytes per second>")
        rates[peer.strip()] = rate
    return rates


def _peer_links(v: Any) -> str | None:
    try:
        parse_peer_links(str(v))
    except ValueError as exc:
        return str(exc)
    return None


_RULES: dict[str, Callable[[Any], str | None]] = {
    "site": _name,
    "role": _one_of(ROLES),
    "node_id": _name,
    "mqtt_client": _one_of(MQTT_CLIENTS),
    "protocol": _one_of(PROTOCOLS),
    "log_level": _one_of(LOG_LEVELS),
    "ca_file": _readable_or_empty,
    "cert_file": _readable_or_empty,
    "key_file": _readable_or_empty,
    "keepalive_s": _positive,
    "heartbeat_s": _positive,
    "reconnect_min_s": _positive,
    "reconnect_max_s": _positive,
    "queue_limit": _positive,
    "inflight_window": _positive,
    "session_expiry_s": _non_negative,
    "outcome_timeout_s": _positive,
    "frame_period_ms": _positive,
    "frame_width": _positive,
    "frame_height": _positive,
    "chunk_bytes": _non_negative,
    "codec": _matches(_CODEC, "pnc[:model], pjpeg[Q], jpeg[Q], webp[Q][mM], raw or qos"),
    "link": _matches(
        _LINK,
        "off, none, light, heavy, switching, stepped (each may take :<factor>), bytes/s or a .csv",
    ),
    "source": _matches(
        _SOURCE, "synthetic, folder:<dir>, video:<file>, accelerometer, shapes28 or fashion-mnist"
    ),
    "data_dir": _non_empty,
    "store_flush_ms": _positive,
    "sync_batch_rows": _positive,
    "sync_interval_s": _positive,
    "sync_ack_timeout_s": _positive,
    "sync_window": _positive,
    "global_store_url": _store_url,
    "retention_days": _positive,
    "retention_interval_s": _positive,
    "coordinator_id": _name,
    "schedule": _one_of(SCHEDULERS),
    "schedule_period_s": _positive,
    "peer_links": _peer_links,
    "zone": lambda v: None if v == "" else _name(v),
    "edge_capacity_fps": _non_negative,
    "edge_downlink_bps": _non_negative,
    "classifier": _classifier,
    "weak_classifier": _weak_classifier,
    "drift_threshold": _non_negative,
    "offload": _one_of(OFFLOAD_MODES),
    "offload_rate": _tokens_per_slot,
    "offload_bucket": _positive,
    "offload_policy": _readable_or_empty,
    "offload_costs": _readable_or_empty,
    "metrics_port": _port,
    "metrics_host": _matches(re.compile(r"^[A-Za-z0-9_.:-]+$"), "a host name or IP address"),
}

_FIELDS = {f.name: f for f in dataclasses.fields(Settings)}
_TYPES: dict[str, type] = {name: type(getattr(Settings(node_id="x"), name)) for name in _FIELDS}


def _coerce(key: str, value: Any, source: str) -> Any:
    """Turn a file or environment value into the field's type, or say why not."""
    wanted = _TYPES[key]
    if isinstance(value, str) and wanted is not str:
        text = value.strip()
        try:
            if wanted is bool:
                lowered = text.lower()
                if lowered not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                    raise ValueError
                return lowered in ("1", "true", "yes", "on")
            return wanted(text)
        except ValueError:
            raise ConfigError(f"{source}: {key} expects {wanted.__name__}, got {value!r}") from None
    if wanted is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, wanted) or (wanted is int and isinstance(value, bool)):
        raise ConfigError(f"{source}: {key} expects {wanted.__name__}, got {value!r}")
    return value


def _apply(values: dict[str, Any], layer: Mapping[str, Any], source: str) -> None:
    for key, raw in layer.items():
        if key not in _FIELDS:
            raise ConfigError(
                f"{source}: unknown key '{key}' (known keys: {', '.join(sorted(_FIELDS))})"
            )
        values[key] = _coerce(key, raw, source)


def read_toml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file {str(path)!r} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {str(path)!r} cannot be read: {exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {str(path)!r} is not valid TOML: {exc}") from None
    nested = [key for key, value in data.items() if isinstance(value, dict)]
    if nested:
        raise ConfigError(f"{path}: unknown key '{nested[0]}' (tables are not used; keys are flat)")
    return data


def env_layer(environ: Mapping[str, str]) -> dict[str, str]:
    prefix_keys = {
        name[len(ENV_PREFIX) :].lower(): value
        for name, value in environ.items()
        if name.startswith(ENV_PREFIX)
    }
    # Switches read by the test suite and tools, not settings.
    for reserved in ("require_services", "config"):
        prefix_keys.pop(reserved, None)
    return prefix_keys


def to_toml(settings: Settings, skip: tuple[str, ...] = ()) -> str:
    """Every setting as flat TOML, read back by load_settings to the same values."""
    lines = []
    for name in _FIELDS:
        if name in skip:
            continue
        value = getattr(settings, name)
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, int | float):
            text = repr(value)
        else:
            # A JSON string is a TOML basic string: the same escapes, UTF-8 kept as is.
            text = json.dumps(str(value), ensure_ascii=False)
        lines.append(f"{name} = {text}")
    return "\n".join(lines) + "\n"


def write_private_toml(settings: Settings, path: Path, skip: tuple[str, ...] = ()) -> Path:
    """The settings as a TOML file only this user can read: it may hold the broker's
    password, which must never appear on a command line (`ps` shows those)."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(to_toml(settings, skip))
    return path


def is_configured(
    key: str,
    config_file: Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> bool:
    """Whether any of the three layers sets `key` (rather than the default applying)."""
    environ = os.environ if environ is None else environ
    if (overrides or {}).get(key) is not None or key in env_layer(environ):
        return True
    path = config_file or (
        Path(environ["EDGEBUS_CONFIG"]) if environ.get("EDGEBUS_CONFIG") else None
    )
    return path is not None and key in read_toml(path)


def load_settings(
    config_file: Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Build validated Settings from the three layers; raises ConfigError."""
    values: dict[str, Any] = {}
    environ = os.environ if environ is None else environ
    path = config_file or (
        Path(environ["EDGEBUS_CONFIG"]) if environ.get("EDGEBUS_CONFIG") else None
    )
    if path is not None:
        _apply(values, read_toml(path), str(path))
    for key, value in env_layer(environ).items():
        _apply(values, {key: value}, f"environment variable {ENV_PREFIX}{key.upper()}")
    _apply(values, {k: v for k, v in (overrides or {}).items() if v is not None}, "command line")
    return Settings(**values).validate()
