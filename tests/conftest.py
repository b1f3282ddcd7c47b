"""Shared fixtures: brokers a test can own (amqtt, a private mosquitto) or the shared one."""

from __future__ import annotations

import os
import socket
import uuid

import pytest

from edgebus.bench.mosquitto import LocalMosquitto, mosquitto_binary
from edgebus.broker.embedded import EmbeddedBroker
from edgebus.broker.memory import MemoryBroker

REQUIRE_SERVICES = os.environ.get("EDGEBUS_REQUIRE_SERVICES") == "1"


def missing_service(reason: str) -> None:
    """Fail under EDGEBUS_REQUIRE_SERVICES=1 (CI), skip otherwise."""
    if REQUIRE_SERVICES:
        pytest.fail(f"required service missing: {reason}")
    pytest.skip(reason)


def port_open(host: str, port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((host, port)) == 0


@pytest.fixture
async def embedded_broker():
    broker = await EmbeddedBroker(port=0).start()
    yield broker
    await broker.stop()


@pytest.fixture
def mosquitto_url():
    """A private mosquitto with the stock configuration (20 messages in flight, 1000 queued
    per client, no persistence) on a free port, else the service on 127.0.0.1:1883."""
    if mosquitto_binary() is not None:
        with LocalMosquitto(stock=True) as local:
            yield local.url
        return
    if port_open("127.0.0.1", 1883):
        yield "mqtt://127.0.0.1:1883"
        return
    missing_service("no mosquitto binary and nothing listens on 127.0.0.1:1883")


@pytest.fixture
def persistent_mosquitto():
    if mosquitto_binary() is None:
        missing_service("the mosquitto binary is needed to stop and restart a broker")
    local = LocalMosquitto(persistent=True, stock=True)
    local.start()
    yield local
    local.__exit__(None, None, None)


@pytest.fixture
def stock_mosquitto():
    """A stock-config mosquitto the test can SIGKILL and start again on the same port."""
    if mosquitto_binary() is None:
        missing_service("the mosquitto binary is needed to kill and restart a broker")
    local = LocalMosquitto(stock=True)
    local.start()
    yield local
    local.__exit__(None, None, None)


@pytest.fixture
def memory_broker():
    """A broker inside the test's process (memory://), private to the test."""
    broker = MemoryBroker(f"test-{uuid.uuid4().hex[:8]}").start()
    yield broker
    broker.stop()


@pytest.fixture(params=["memory", "embedded"])
async def actor_broker_url(request):
    """Actor tests run in memory and on the embedded amqtt broker: the same suite, so a
    unit test of a node needs no broker process and the real broker still checks it."""
    if request.param == "memory":
        yield request.getfixturevalue("memory_broker").url
    else:
        broker = await EmbeddedBroker(port=0).start()
        yield broker.url
        await broker.stop()


@pytest.fixture(params=["memory", "embedded", "mosquitto"])
async def broker_url(request):
    """Each bus test runs in memory, against the embedded amqtt broker and against a
    real mosquitto: the same suite, three brokers."""
    if request.param == "memory":
        yield request.getfixturevalue("memory_broker").url
    elif request.param == "embedded":
        broker = await EmbeddedBroker(port=0).start()
        yield broker.url
        await broker.stop()
    else:
        yield request.getfixturevalue("mosquitto_url")


@pytest.fixture(scope="session")
def fashion_mnist_dir():
    """Debian's dataset-fashion-mnist, which `make setup` installs where it can."""
    from edgebus.ml.datasets import FASHION_MNIST_DIR

    if not (FASHION_MNIST_DIR / "train-images-idx3-ubyte.gz").exists():
        missing_service(f"Fashion-MNIST is not installed at {FASHION_MNIST_DIR}")
    return FASHION_MNIST_DIR
