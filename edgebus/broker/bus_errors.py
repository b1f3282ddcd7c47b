"""What the Bus raises and reports: one exception hierarchy under BusError, and the
record of a message the broker refused."""

from __future__ import annotations

from dataclasses import dataclass

from edgebus.broker.transport import refusal_text


class BusError(RuntimeError):
    """Base of the errors the Bus raises; a client library's own never escape it."""


class OutgoingQueueFull(BusError):
    """The bus is disconnected and its outgoing queue holds queue_limit messages already."""


class RequestTimeout(TimeoutError):
    pass


class RequestFailed(BusError):
    """The responder answered with an ErrorReply."""


class BusClosed(BusError):
    pass


class PublishRefused(BusError):
    """The client library refused this one message (a topic it cannot send, say)."""


@dataclass(frozen=True, slots=True)
class Refusal:
    """A message the broker acknowledged but refused (an MQTT 5 PUBACK reason >= 0x80)."""

    topic: str
    reason_code: int

    def __str__(self) -> str:
        return f"the broker refused the publish to {self.topic}: {refusal_text(self.reason_code)}"
