"""Bridged sites on loopback, for tests and benchmarks: a cloud Mosquitto, and per site a
Mosquitto (stock limits) bridged to it by the configuration `edgebus broker-config` writes,
each bridge over an uplink the caller can cut and restore."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field

from edgebus.bench.mosquitto import LocalMosquitto
from edgebus.bench.uplink import CuttableUplink
from edgebus.broker.address import parse_broker_url
from edgebus.broker.bridge import SiteBridge


@dataclass
class Site:
    name: str
    broker: LocalMosquitto
    uplink: CuttableUplink

    @property
    def url(self) -> str:
        return self.broker.url


@dataclass
class BridgedSites:
    names: tuple[str, ...]
    namespace: str = "lab"
    keepalive_s: int = 5
    cloud: LocalMosquitto = field(default_factory=lambda: LocalMosquitto(stock=True))
    sites: dict[str, Site] = field(default_factory=dict)

    async def start(self) -> BridgedSites:
        self.cloud.start()
        for name in self.names:
            uplink = await CuttableUplink("127.0.0.1", self.cloud.port).start()
            bridge = SiteBridge(
                name,
                parse_broker_url(f"mqtt://127.0.0.1:{uplink.port}"),
                namespace=self.namespace,
                keepalive_s=self.keepalive_s,
            )
            broker = LocalMosquitto(stock=True, extra_config=bridge.bridge_section())
            self.sites[name] = Site(name, broker.start(), uplink)
        return self

    def cut(self, name: str) -> None:
        self.sites[name].uplink.cut()

    def restore(self, name: str) -> None:
        self.sites[name].uplink.restore()

    async def stop(self) -> None:
        for site in self.sites.values():
            site.broker.stop()
            shutil.rmtree(site.broker.workdir, ignore_errors=True)
            await site.uplink.stop()
        self.cloud.stop()
        shutil.rmtree(self.cloud.workdir, ignore_errors=True)
