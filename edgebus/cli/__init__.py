"""The `edgebus` command line: a thin typer layer over the packages below it, one module
per command group. Importing the package registers every command on `app`, in the order
`edgebus --help` lists them; `main` is the console entry point."""

# isort: off
from edgebus.cli import fleet  # noqa: F401  node, up, broker, broker-user
from edgebus.cli import bus_tools  # noqa: F401  sub, pub, nodes
from edgebus.cli import storage  # noqa: F401  query, audit, bench sync
from edgebus.cli import acl  # noqa: F401  acl
from edgebus.cli import asyncapi_cmd  # noqa: F401  asyncapi
from edgebus.cli import bridge_cmd  # noqa: F401  broker-config
from edgebus.cli import json_view_cmd  # noqa: F401  json-view
from edgebus.cli import bench  # noqa: F401  bench bus, bench codecs
from edgebus.cli import train  # noqa: F401  train …
from edgebus.cli import photos  # noqa: F401  photos
from edgebus.cli import experiments  # noqa: F401  experiment …
from edgebus.cli import qos  # noqa: F401  qos …, models …
from edgebus.cli import qos_experiment  # noqa: F401  experiment qos

# isort: on
from edgebus.cli.app import app, main

__all__ = ["app", "main"]
