"""A Bus from Settings: what every node and every CLI tool connects with.

Kept apart from the node runtime (base.py) so that a tool such as `edgebus pub` imports
the bus and nothing of the stores or the models."""

from __future__ import annotations

from edgebus.broker.address import TlsOptions, parse_broker_url
from edgebus.broker.bus import Bus, BusOptions
from edgebus.broker.transport import Will
from edgebus.config import Settings

__all__ = ["bus_for"]


def bus_for(settings: Settings, will: Will | None = None, persistent: bool = False) -> Bus:
    """A Bus configured from Settings (raises BrokerUrlError for a bad URL).

    `persistent` asks the broker to keep the session (subscriptions and queued QoS 1
    messages) for settings.session_expiry_s while the client is away."""
    tls = TlsOptions(settings.ca_file, settings.cert_file, settings.key_file, settings.tls_insecure)
    keep = persistent and settings.session_expiry_s > 0
    options = BusOptions(
        site=settings.site,
        node_id=settings.node_id,
        client=settings.mqtt_client,
        protocol=settings.protocol,
        keepalive_s=settings.keepalive_s,
        clean_start=not keep,
        session_expiry_s=settings.session_expiry_s if keep else 0,
        queue_limit=settings.queue_limit,
        max_inflight=settings.inflight_window,
        reconnect_min_s=settings.reconnect_min_s,
        reconnect_max_s=settings.reconnect_max_s,
        will=will,
    )
    return Bus(parse_broker_url(settings.broker, tls), options)
