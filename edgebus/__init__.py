"""edgebus: asyncio middleware for edge AI over MQTT."""

__version__ = "0.1.0"
