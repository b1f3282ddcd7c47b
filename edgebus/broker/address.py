"""Broker URLs: ``mqtt://user:pass@host:port`` and ``mqtts://…`` with TLS options, and
``memory://<name>`` for a broker inside the process (broker/memory.py)."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883, "memory": 0}


class BrokerUrlError(ValueError):
    """A broker URL that cannot be used; the message is one line."""


@dataclass(frozen=True, slots=True)
class TlsOptions:
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    insecure: bool = False

    def context(self) -> ssl.SSLContext:
        try:
            context = ssl.create_default_context(cafile=self.ca_file or None)
            if self.cert_file:
                context.load_cert_chain(self.cert_file, self.key_file or None)
        except (OSError, ssl.SSLError) as exc:
            raise BrokerUrlError(f"TLS files cannot be loaded: {exc}") from None
        if self.insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    host: str
    port: int
    tls: bool = False
    username: str | None = None
    password: str | None = None
    tls_options: TlsOptions = TlsOptions()
    in_memory: bool = False  # memory://<host>: the in-process broker of that name

    @property
    def url(self) -> str:
        """The URL without the password, safe to log."""
        if self.in_memory:
            return f"memory://{self.host}"
        scheme = "mqtts" if self.tls else "mqtt"
        user = f"{self.username}@" if self.username else ""
        return f"{scheme}://{user}{self.host}:{self.port}"

    def ssl_context(self) -> ssl.SSLContext | None:
        return self.tls_options.context() if self.tls else None


def parse_broker_url(url: str, tls_options: TlsOptions | None = None) -> BrokerAddress:
    """Parse and check a broker URL; raises BrokerUrlError naming what is wrong."""
    if not isinstance(url, str) or not url.strip():
        raise BrokerUrlError("broker URL is empty; expected mqtt://host:port or mqtts://host:port")
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise BrokerUrlError(f"broker URL {url!r} is malformed: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise BrokerUrlError(
            f"broker URL {url!r} has scheme {parts.scheme!r}; expected mqtt:// or mqtts:// "
            "(memory://name for a broker inside the process)"
        )
    if not parts.hostname:
        raise BrokerUrlError(f"broker URL {url!r} has no host; expected {scheme}://host:port")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise BrokerUrlError(f"broker URL {url!r} must not have a path, query or fragment")
    options = tls_options or TlsOptions()
    for label, path in (
        ("CA file", options.ca_file),
        ("client cert", options.cert_file),
        ("client key", options.key_file),
    ):
        if path and not Path(path).is_file():
            raise BrokerUrlError(f"{label} {path!r} does not exist")
    return BrokerAddress(
        host=parts.hostname,
        port=port if port is not None else DEFAULT_PORTS[scheme],
        tls=scheme == "mqtts",
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        tls_options=options,
        in_memory=scheme == "memory",
    )
