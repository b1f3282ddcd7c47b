"""An uplink that a test or benchmark can cut: a loopback TCP relay between a site broker's
bridge and the cloud broker.

A cut behaves like a pulled cable, not like a broker that closes its port: bytes already
on the way are lost, connections stay open but carry nothing, and new connections are
accepted and then hear nothing, so the bridge notices only by its own keepalive. When the
link is restored, the connections that lived through the cut are reset (their byte streams
lost data) and new ones pass.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

from edgebus.aio import cancel_and_wait

READ_BYTES = 65536


@dataclass(eq=False)
class _Pair:
    client: asyncio.StreamWriter
    server: asyncio.StreamWriter | None = None
    task: asyncio.Task[None] | None = None
    blackholed: bool = False

    def close(self) -> None:
        for writer in (self.client, self.server):
            if writer is not None:
                with contextlib.suppress(Exception):
                    writer.transport.abort()  # a reset, as a dead link ends


class CuttableUplink:
    """Listens on 127.0.0.1:<port> and relays to target_host:target_port while up."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self.up = True
        self.bytes_relayed = 0
        self._server: asyncio.Server | None = None
        self._pairs: set[_Pair] = set()

    async def start(self) -> CuttableUplink:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def cut(self) -> None:
        """From now on nothing passes, in either direction, on any connection."""
        self.up = False
        for pair in self._pairs:
            pair.blackholed = True

    def restore(self) -> None:
        """Reset the connections that lived through the cut; new ones pass again."""
        self.up = True
        for pair in list(self._pairs):
            if pair.blackholed:
                pair.close()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        tasks = [pair.task for pair in list(self._pairs) if pair.task is not None]
        for pair in list(self._pairs):
            pair.close()  # the relays see their sockets end and return by themselves
        if tasks:
            _, stuck = await asyncio.wait(tasks, timeout=2.0)
            await cancel_and_wait(stuck, suppress=(Exception,))
        self._pairs.clear()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        pair = _Pair(writer, task=asyncio.current_task(), blackholed=not self.up)
        self._pairs.add(pair)
        try:
            if pair.blackholed:
                await self._swallow(reader, pair)
                return
            try:
                up_reader, up_writer = await asyncio.open_connection(*self.target)
            except OSError:
                return  # the cloud broker is down: the bridge sees a reset
            pair.server = up_writer
            await asyncio.gather(
                self._pipe(reader, up_writer, pair), self._pipe(up_reader, writer, pair)
            )
        finally:
            pair.close()
            self._pairs.discard(pair)

    async def _swallow(self, reader: asyncio.StreamReader, pair: _Pair) -> None:
        """A connection opened during a cut: read and drop until the link is restored."""
        while not reader.at_eof() and pair.blackholed:
            if not await reader.read(READ_BYTES):
                return

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, pair: _Pair
    ) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await reader.read(READ_BYTES):
                if pair.blackholed:
                    continue  # lost on the cut link
                writer.write(data)
                self.bytes_relayed += len(data)
                await writer.drain()
        pair.close()
