"""What the camera, the edge, the cloud and their parts count (reported in each node's
status and heartbeat by field name; the dashboard reads them by those names)."""

from __future__ import annotations

from dataclasses import dataclass

from edgebus.actor.counters import Counts


@dataclass(slots=True)
class CameraCounters(Counts):
    frames_sent: int = 0
    frames_complete: int = 0  # every unit went out before the deadline
    frames_truncated: int = 0  # the deadline cut the frame short
    bytes_sent: int = 0
    units_sent: int = 0
    overruns: int = 0
    frames_skipped: int = 0  # capture slots missed while running late
    frames_unassigned: int = 0  # captured while the schedule gave no edge
    frames_kept_local: int = 0  # the offload gate kept them (a weak-model answer or none)
    frames_dropped: int = 0
    drop_records: int = 0
    send_errors: int = 0
    encode_errors: int = 0
    local_results: int = 0
    results_unpublished: int = 0
    offload_decisions: int = 0
    frames_offloaded: int = 0
    frames_weak_only: int = 0
    offloads_denied_no_token: int = 0


@dataclass(slots=True)
class EdgeCounters(Counts):
    frames_done: int = 0
    deadline_hits: int = 0
    deadline_misses: int = 0
    bytes_received: int = 0
    units_received: int = 0
    drop_records: int = 0
    frames_overload: int = 0
    undecodable_frames: int = 0
    frames_rejected_unknown_model: int = 0
    frames_refused: int = 0  # outside the ledger's window, or from a camera's older run
    frames_forged: int = 0  # the payload names another camera than the topic
    frames_for_other_edges: int = 0
    unexpected_messages: int = 0
    outcomes_repeated: int = 0
    outcomes_unpublished: int = 0
    decide_errors: int = 0
    policy_changes: int = 0

    def deadline(self, met: bool) -> None:
        if met:
            self.deadline_hits += 1
        else:
            self.deadline_misses += 1


@dataclass(slots=True)
class CloudCounters(Counts):
    results_seen: int = 0
    bytes_reported: int = 0


@dataclass(slots=True)
class FollowerCounters(Counts):
    """A model follower: the switches it saw, applied and refused, the models it fetched."""

    switches: int = 0
    switches_applied: int = 0
    switches_refused: int = 0
    fetches: int = 0
    checksum_rejected: int = 0
    frames_rejected: int = 0


@dataclass(slots=True)
class LatentSenderCounters(Counts):
    frames_sent: int = 0
    bytes_sent: int = 0
    frames_skipped_no_model: int = 0


@dataclass(slots=True)
class LatentReceiverCounters(Counts):
    frames_decoded: int = 0
    frames_rejected: int = 0
    wrong_model: int = 0
