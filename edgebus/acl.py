"""The least access each role needs on the broker, as a Mosquitto ACL or the embedded
broker's TOML ACL (`edgebus acl`).

A node's user name is its node id. What each role publishes and subscribes to was read
off a fleet's traffic (a verbose Mosquitto under `edgebus up --edges 2` with every tool
run against it) and is kept tested by a run in which every role syncs its store under
these rules (tests/integration/test_acl.py). Rights that name another node are those a
role needs for any node: an edge answers whichever camera it serves, the cloud
acknowledges every store, a service replies to whoever asked.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from edgebus.topics import Topics, check_segment

ROLES = ("camera", "edge", "cloud", "coordinator", "operator", "json-view")
FORMATS = ("mosquitto", "toml")
# A user name both ACL formats take without quoting: a node id of these characters.
_USER_NAME = re.compile(r"^[A-Za-z0-9._-]+$")


class AclError(ValueError):
    """A node list that cannot become an ACL; the message is one line."""


@dataclass(frozen=True, slots=True)
class Rights:
    publish: tuple[str, ...]
    subscribe: tuple[str, ...]


def _node_rights(topics: Topics, me: str) -> Rights:
    """What every node does: report itself, sync its store, answer and ask requests."""
    return Rights(
        publish=(
            topics.status(me),  # retained, and the last will
            topics.heartbeat(me),
            topics.sync(me),
            topics.deadletter(),
            topics.any_reply(),  # answers to `edgebus query --fresh` and to peers
        ),
        subscribe=(topics.requests_to(me), topics.replies(me), topics.sync_ack(me)),
    )


def rights(role: str, me: str, topics: Topics, coordinator: str = "coordinator") -> Rights:
    """The topic filters node `me` of `role` may publish to and subscribe to."""
    check_segment(me, "node id")
    if role == "operator":  # `edgebus nodes`, `sub`, `qos set`, `query --fresh`, dashboards
        return Rights(
            publish=(topics.any_request(), topics.qos_request()),
            subscribe=(topics.everything(),),
        )
    common = _node_rights(topics, me)
    fetch_model = topics.request(coordinator, "model")
    if role == "camera":
        own = Rights(
            publish=(
                topics.frames(me),
                topics.dropped(me),
                topics.result(me),  # answers of its weak model when it keeps a frame
                topics.model_ack(me),
                topics.model_drift(),
                fetch_model,
            ),
            subscribe=(
                topics.outcome(me),
                topics.statuses(),  # an edge going offline ends the wait for it
                topics.sched_policy(me),
                topics.model_switch(),
            ),
        )
    elif role == "edge":
        own = Rights(
            publish=(
                topics.result(me),
                topics.outcomes(),
                topics.droppeds(),
                topics.model_ack(me),
                fetch_model,
            ),
            subscribe=(topics.frames(), topics.model_switch(), topics.sched_policy(me)),
        )
    elif role == "cloud":
        own = Rights(publish=(topics.sync_acks(),), subscribe=(topics.syncs(), topics.results()))
    elif role == "coordinator":
        own = Rights(
            publish=(topics.model_switch(), topics.sched_policies()),
            subscribe=(
                topics.statuses(),
                topics.heartbeats(),
                topics.qos_request(),
                topics.model_switch(),
                topics.model_drift(),
                topics.model_acks(),
                topics.sched_policies(),
            ),
        )
    elif role == "json-view":  # reads what it may republish, writes only the JSON copies
        own = Rights(
            publish=(topics.json_views(),),
            subscribe=tuple(topics.json_viewable().values()),
        )
    else:
        raise AclError(f"role {role!r}: expected one of {', '.join(ROLES)}")
    return Rights(common.publish + own.publish, common.subscribe + own.subscribe)


def parse_members(items: list[str]) -> dict[str, str]:
    """'camera-1=camera' items -> {node id: role}, in order; a bad item is an AclError."""
    members: dict[str, str] = {}
    for item in items:
        node, sep, role = item.partition("=")
        if not sep or role not in ROLES:
            raise AclError(f"{item!r}: expected NODE=ROLE with ROLE one of {', '.join(ROLES)}")
        if not _USER_NAME.match(node):
            raise AclError(f"{item!r}: a node id here is letters, digits, '.', '_' or '-'")
        if node in members:
            raise AclError(f"{item!r}: node {node!r} is listed twice")
        members[node] = role
    return members


def render(members: dict[str, str], site: str, fmt: str) -> str:
    """The ACL file for these nodes on one site."""
    if fmt not in FORMATS:
        raise AclError(f"format {fmt!r}: expected one of {', '.join(FORMATS)}")
    topics = Topics(site)
    coordinator = next((n for n, r in members.items() if r == "coordinator"), "coordinator")
    blocks = []
    for node, role in members.items():
        granted = rights(role, node, topics, coordinator)
        if fmt == "mosquitto":
            # Mosquitto: `read` covers subscribing and receiving, `write` publishing.
            lines = [f"# {role}", f"user {node}"]
            lines += [f"topic write {t}" for t in granted.publish]
            lines += [f"topic read {t}" for t in granted.subscribe]
        else:
            lines = [f"# {role}", f'[users."{node}"]']
            lines.append("publish = [" + ", ".join(f'"{t}"' for t in granted.publish) + "]")
            lines.append("subscribe = [" + ", ".join(f'"{t}"' for t in granted.subscribe) + "]")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"
