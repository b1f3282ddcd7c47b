"""The embedded broker (amqtt, MQTT 3.1.1), for one machine with nothing to install.

It binds 127.0.0.1 only. Authentication uses amqtt's password file (argon2 hashes,
written by `edgebus broker-user`). The ACL file is TOML with one table per user, each
holding `publish` and `subscribe` lists of topic filters (example in the README).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import socket
import tomllib
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgebus.broker.ports import free_port

BIND_HOST = "127.0.0.1"

# amqtt logs each connection and every protocol hiccup at INFO/WARNING; a dev broker
# should stay quiet unless something is really wrong.
for _name in ("amqtt", "transitions"):
    logging.getLogger(_name).setLevel(logging.ERROR)


class EmbeddedBrokerError(RuntimeError):
    """The embedded broker cannot start; the message is one line."""


@dataclass(frozen=True, slots=True)
class AccessList:
    publish: dict[str, list[str]] = field(default_factory=dict)
    subscribe: dict[str, list[str]] = field(default_factory=dict)


def load_acl(path: Path) -> AccessList:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise EmbeddedBrokerError(f"ACL file {str(path)!r} does not exist") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise EmbeddedBrokerError(f"ACL file {str(path)!r} is not valid TOML: {exc}") from None
    users = data.get("users")
    unknown = sorted(set(data) - {"users"})
    if unknown or not isinstance(users, dict):
        raise EmbeddedBrokerError(
            f"ACL file {str(path)!r}: expected only [users.<name>] tables, found {unknown or data}"
        )
    acl = AccessList()
    for user, rules in users.items():
        if not isinstance(rules, dict) or set(rules) - {"publish", "subscribe"}:
            raise EmbeddedBrokerError(
                f"ACL file {str(path)!r}: [users.{user}] may only hold publish and subscribe lists"
            )
        for action in ("publish", "subscribe"):
            topics = rules.get(action, [])
            if not isinstance(topics, list) or not all(isinstance(t, str) for t in topics):
                raise EmbeddedBrokerError(
                    f"ACL file {str(path)!r}: users.{user}.{action} must be a list of topic filters"
                )
            getattr(acl, action)[user] = topics
    return acl


def check_port_free(port: int) -> None:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((BIND_HOST, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise EmbeddedBrokerError(
                    f"port {port} on {BIND_HOST} is already in use; choose another with --port, "
                    "or --port 0 for a free one"
                ) from None
            raise EmbeddedBrokerError(f"cannot bind {BIND_HOST}:{port}: {exc.strerror}") from None


def add_user(users_file: Path, username: str, password: str) -> None:
    """Add or replace a user in an amqtt password file (argon2 hash); the file is 0600."""
    from pwdlib import PasswordHash

    if not username or ":" in username or username != username.strip():
        raise EmbeddedBrokerError(f"user name {username!r} must be non-empty and without ':'")
    if not password:
        raise EmbeddedBrokerError("the password is empty; give one at the prompt or on stdin")
    lines = read_users(users_file)
    kept = [line for line in lines if line.split(":", 1)[0] != username]
    kept.append(f"{username}:{PasswordHash.recommended().hash(password)}")
    descriptor = os.open(users_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as out:
        out.write("\n".join(kept) + "\n")
    os.chmod(users_file, 0o600)  # a file that existed keeps its mode through O_CREAT


def read_users(users_file: Path) -> list[str]:
    """The lines of an existing password file; an error names what is wrong with it."""
    where = f"users file {str(users_file)!r}"
    if users_file.is_dir():
        raise EmbeddedBrokerError(f"{where} is a directory; give a file path")
    if not users_file.exists():
        return []
    try:
        lines = users_file.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise EmbeddedBrokerError(f"{where} is not a text file of user:hash lines") from None
    except OSError as exc:
        raise EmbeddedBrokerError(f"{where} cannot be read: {exc.strerror}") from None
    if any(line and ":" not in line for line in lines):
        raise EmbeddedBrokerError(f"{where} is not a file of user:hash lines")
    return lines


class EmbeddedBroker:
    def __init__(
        self, port: int = 1883, users_file: Path | None = None, acl_file: Path | None = None
    ) -> None:
        self.requested_port = port
        self.port = port
        self.users_file = users_file
        self.acl_file = acl_file
        self._broker: Any = None

    @property
    def url(self) -> str:
        return f"mqtt://{BIND_HOST}:{self.port}"

    def _config(self) -> dict[str, Any]:
        plugins: dict[str, Any] = {
            "amqtt.plugins.authentication.AnonymousAuthPlugin": {
                "allow_anonymous": self.users_file is None
            },
        }
        if self.users_file is not None:
            if not self.users_file.is_file():
                raise EmbeddedBrokerError(f"users file {str(self.users_file)!r} does not exist")
            plugins["amqtt.plugins.authentication.FileAuthPlugin"] = {
                "password_file": str(self.users_file)
            }
        if self.acl_file is not None:
            acl = load_acl(self.acl_file)
            plugins["amqtt.plugins.topic_checking.TopicAccessControlListPlugin"] = {
                "publish_acl": acl.publish,
                # amqtt 0.12's plugin config names the subscribe list `acl`.
                "acl": acl.subscribe,
            }
        return {
            "listeners": {"default": {"type": "tcp", "bind": f"{BIND_HOST}:{self.port}"}},
            "plugins": plugins,
        }

    async def start(self) -> EmbeddedBroker:
        from edgebus.broker.amqtt_fixes import FleetSafeBroker

        if self.acl_file is not None and self.users_file is None:
            # Without authentication a client is whoever its CONNECT claims to be, and
            # the ACL would hand that user's rights to anyone.
            raise EmbeddedBrokerError("--acl needs --auth: without a password file anyone can "
                                      "claim any user name and its rights")  # fmt: skip
        self.port = free_port() if self.requested_port == 0 else self.requested_port
        config = self._config()  # a bad users or ACL file is reported before the port
        check_port_free(self.port)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                self._broker = FleetSafeBroker(config)
                await self._broker.start()
        except EmbeddedBrokerError:
            raise
        except Exception as exc:  # amqtt wraps bind and plugin failures in several types
            raise EmbeddedBrokerError(f"embedded broker failed to start: {exc}") from None
        return self

    async def stop(self) -> None:
        if self._broker is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._broker.shutdown(), 5)
            self._broker = None

    async def __aenter__(self) -> EmbeddedBroker:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()
