"""What one `edgebus up` runs: the plan given on the command line, the ids of its nodes,
and each node's settings (one edge as configured, or several under JSTSH)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from edgebus.broker.link import FASHION_LINK_SCALE
from edgebus.config import Settings
from edgebus.errors import LaunchError
from edgebus.qos.model_store import POOL_OFF, PoolError, pool_dataset, resolve_pool


@dataclass(slots=True)
class UpPlan:
    cameras: int = 2
    duration_s: float = 10.0
    broker: str | None = None
    processes: bool = False
    dashboard: bool = True
    # Cameras' uplink trace: the PNC system's point is accuracy that follows the bandwidth.
    link: str = "switching"
    # More than one edge: the coordinator maps cameras to edges by JSTSH.
    edges: int = 1
    kill_edge_after_s: float | None = None  # --processes: SIGKILL the last edge then
    # Sensor streams: items of the QoS pool's data set (Fashion-MNIST images, or
    # accelerometer windows) coded with the model the QoS orchestrator chose. They follow
    # its model switches, so `edgebus qos set` changes what they send.
    sensors: int = 1


# Unless set: the shapes' fleet runs its cameras over the switching uplink trace (the PNC
# system's point is accuracy that follows the bandwidth). Real photos (a folder or a
# video) mean the ImageNet classifier, its 224 px input, WebP at quality 20 (2.4 to 3.5 kB
# per photo here, every label kept) and no emulated uplink: the presets are sized for
# 64 px shapes, where a 224 px photo would never fit.
SHAPES_DEFAULTS: dict[str, Any] = {"link": "switching"}
PHOTO_DEFAULTS: dict[str, Any] = {
    "frame_width": 224, "frame_height": 224, "codec": "webp20", "link": "off",
}  # fmt: skip
# Fashion-MNIST's test images: 28 px, the PNC model trained on them, the switching trace
# scaled to 28 px frames as in the deadline experiment, and the Fashion-MNIST weak model
# (with its costs and DQNs) should the cameras offload.
FASHION_DEFAULTS: dict[str, Any] = {
    "frame_width": 28, "frame_height": 28, "codec": "pnc:fashion_pnc28",
    "link": f"switching:{FASHION_LINK_SCALE:g}", "weak_classifier": "fashion_weak",
}  # fmt: skip


def is_photo_source(source: str) -> bool:
    return source.startswith(("folder:", "video:"))


def up_defaults(settings: Settings, configured: Callable[[str], bool]) -> Settings:
    """The settings `up` runs with: the user's, and for what they left unset the defaults
    of a shapes fleet or, with a photo source or the ImageNet classifier, a photo fleet,
    or with Fashion-MNIST's images or classifier, a Fashion-MNIST fleet."""
    classifier = settings.classifier
    if not configured("classifier") and is_photo_source(settings.source):
        classifier = "imagenet"
    if not configured("classifier") and settings.source == "fashion-mnist":
        classifier = "fashion_strong"
    defaults = {"imagenet": PHOTO_DEFAULTS, "fashion_strong": FASHION_DEFAULTS}.get(
        classifier, SHAPES_DEFAULTS
    )
    unset = {key: value for key, value in defaults.items() if not configured(key)}
    return dataclasses.replace(settings, classifier=classifier, **unset)


# A camera reaches its nearest edge over its uplink trace and every other edge over a
# slower emulated link (the light-jamming rate), so the mapping has something to weigh.
FAR_EDGE_BPS = 2400.0
# Each edge's ingress, shared by the cameras mapped to it: two cameras' unjammed uplinks.
EDGE_DOWNLINK_BPS = 12000.0


# What makes a stream a sensor: the pool's data set, coded by the model in force. Offload
# gates weigh image confidence, so a sensor sends every item.
SENSOR_SETTINGS: dict[str, Any] = {"codec": "qos", "offload": "off"}


def sensor_source(settings: Settings) -> str:
    """What a sensor streams: the data set of the pool the coordinator loads (the models
    take nothing else); accelerometer windows when the orchestrator is off, or its pool
    unreadable (the coordinator reports that)."""
    if settings.qos_pool == POOL_OFF:
        return "accelerometer"
    try:
        return pool_dataset(resolve_pool(settings.qos_pool, settings.data_dir))
    except PoolError:
        return "accelerometer"


def edge_ids(plan: UpPlan) -> list[str]:
    return [f"edge-{j + 1}" for j in range(plan.edges)]


def camera_ids(plan: UpPlan) -> list[str]:
    """Every stream's id (the role is camera for both): image cameras, then sensors."""
    images = [f"camera-{i + 1}" for i in range(plan.cameras)]
    return images + [f"sensor-{i + 1}" for i in range(plan.sensors)]


def far_links(camera_index: int, edges: list[str]) -> str:
    """`peer_links` of camera i: every edge but its nearest (edge i mod E) at FAR_EDGE_BPS."""
    near = edges[camera_index % len(edges)]
    return ",".join(f"{e}={FAR_EDGE_BPS:g}" for e in edges if e != near)


def node_settings(settings: Settings, plan: UpPlan) -> dict[str, Settings]:
    """Every node's settings by id: one edge as before, or several under JSTSH."""
    edges, cameras = edge_ids(plan), camera_ids(plan)
    scheduled = plan.edges > 1

    def configured(role: str, node_id: str, **extra: Any) -> Settings:
        return dataclasses.replace(settings, role=role, node_id=node_id, **extra)

    nodes = {
        "coordinator": configured(
            "coordinator", "coordinator", schedule="jstsh" if scheduled else settings.schedule
        ),
        "cloud": configured("cloud", "cloud"),
    }
    for edge in edges:
        edge_extra: dict[str, Any] = (
            {"scheduled": True, "edge_downlink_bps": EDGE_DOWNLINK_BPS} if scheduled else {}
        )
        nodes[edge] = configured("edge", edge, **edge_extra)
    for index, camera in enumerate(cameras):
        camera_extra: dict[str, Any] = (
            {"scheduled": True, "peer_links": far_links(index, edges)} if scheduled else {}
        )
        if camera.startswith("sensor-"):
            camera_extra.update(SENSOR_SETTINGS, source=sensor_source(settings))
        nodes[camera] = configured("camera", camera, **camera_extra)
    return with_metrics_ports(nodes, settings.metrics_port)


def with_metrics_ports(nodes: dict[str, Settings], base: int) -> dict[str, Settings]:
    """`up --metrics-port BASE`: node i (in start order) serves its metrics on BASE + i."""
    if base <= 0:
        return nodes
    if base + len(nodes) - 1 > 65535:
        raise LaunchError(f"--metrics-port {base}: {len(nodes)} nodes need ports up to 65535")
    return {
        node_id: dataclasses.replace(node, metrics_port=base + i)
        for i, (node_id, node) in enumerate(nodes.items())
    }


def check_metrics_ports(nodes: dict[str, Settings]) -> None:
    """Refuse a taken metrics port before the fleet starts: one line naming node and port."""
    from edgebus.actor.metrics import probe_port

    for node in nodes.values():
        if node.metrics_port > 0:
            probe_port(node.node_id, node.metrics_host, node.metrics_port)


def metrics_line(nodes: dict[str, Settings]) -> str:
    """Which node serves its Prometheus metrics where; "" when metrics are off."""
    served = [f"{n.node_id} {n.metrics_host}:{n.metrics_port}" for n in nodes.values()
              if n.metrics_port > 0]  # fmt: skip
    return f"Prometheus metrics (/metrics): {', '.join(served)}" if served else ""
