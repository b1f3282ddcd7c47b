"""The cuttable uplink the bridged-site tests cut: it relays, a cut loses bytes silently
on open connections and new ones, and the link's return resets what lived through it."""

from __future__ import annotations

import asyncio

import pytest

from edgebus.bench.uplink import CuttableUplink

pytestmark = pytest.mark.timeout(30)


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(1024):
        writer.write(data)
        await writer.drain()
    writer.close()


async def test_relay_cut_and_restore():
    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    uplink = await CuttableUplink("127.0.0.1", server.sockets[0].getsockname()[1]).start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", uplink.port)
        writer.write(b"ping")
        assert await asyncio.wait_for(reader.readexactly(4), 5) == b"ping"
        uplink.cut()
        writer.write(b"lost")  # like a pulled cable: no error, no answer
        await writer.drain()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(reader.read(4), 0.5)
        late_reader, late_writer = await asyncio.open_connection("127.0.0.1", uplink.port)
        late_writer.write(b"hello?")  # accepted, and never heard
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(late_reader.read(6), 0.5)
        uplink.restore()  # what lived through the cut is reset...
        assert await asyncio.wait_for(reader.read(4), 5) == b""
        assert await asyncio.wait_for(late_reader.read(6), 5) == b""
        again_reader, again_writer = await asyncio.open_connection("127.0.0.1", uplink.port)
        again_writer.write(b"back")  # ...and a new connection passes
        assert await asyncio.wait_for(again_reader.readexactly(4), 5) == b"back"
        for w in (writer, late_writer, again_writer):
            w.close()
    finally:
        await uplink.stop()
        server.close()
        await server.wait_closed()
