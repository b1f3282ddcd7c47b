"""Errors the command line turns into one `error:` line, kept free of heavy imports so
that reporting a usage error does not load the fleet."""

from __future__ import annotations


class LaunchError(RuntimeError):
    """A node of `edgebus up` failed to start; the message is one line."""


class NodeFailed(RuntimeError):
    """A task a node depends on failed; the node went offline with this reason."""
