import pytest

from edgebus.topics import TopicError, Topics, parse


def test_builders_follow_the_scheme():
    t = Topics("lab")
    assert t.frame_chunk("cam-1", 7, 3) == "edgebus/v1/lab/frames/cam-1/7/3"
    assert t.frame_end("cam-1", 7) == "edgebus/v1/lab/frames/cam-1/7/end"
    assert t.result("edge-1") == "edgebus/v1/lab/results/edge-1"
    assert t.status("n") == "edgebus/v1/lab/status/n"
    assert t.qos_request() == "edgebus/v1/lab/qos/request"
    assert t.model_switch() == "edgebus/v1/lab/model/switch"
    assert t.sched_policy("edge-2") == "edgebus/v1/lab/sched/policy/edge-2"
    assert t.sync("n") == "edgebus/v1/lab/sync/n"
    assert t.sync_ack("n") == "edgebus/v1/lab/sync/n/ack"
    assert t.deadletter() == "edgebus/v1/lab/deadletter"
    assert t.shared_frames("edges") == "$share/edges/edgebus/v1/lab/frames/+/+/+"


@pytest.mark.parametrize("bad", ["", "a/b", "a+", "#", "$sys"])
def test_bad_segments_are_rejected(bad):
    with pytest.raises(TopicError):
        Topics("lab").status(bad)
    with pytest.raises(TopicError):
        Topics(bad)


def test_parse_round_trips_builders():
    t = Topics("site-a")
    chunk = parse(t.frame_chunk("cam", 12, 0))
    assert (chunk.site, chunk.kind, chunk.node, chunk.frame_id) == ("site-a", "frames", "cam", 12)
    assert not chunk.is_end_marker
    assert parse(t.frame_end("cam", 12)).is_end_marker
    assert parse(t.sched_policy("e1")).node == "e1"
    qos = parse(t.qos_request())
    assert qos.node is None and qos.rest == ("request",)
    assert parse(t.result("edge")).node == "edge"


@pytest.mark.parametrize("topic", ["foo/bar", "edgebus/v2/x/status/n", "edgebus/v1/x/status"])
def test_parse_rejects_off_scheme_topics(topic):
    with pytest.raises(TopicError):
        parse(topic)


def test_frame_id_must_be_numeric():
    with pytest.raises(TopicError):
        _ = parse("edgebus/v1/lab/frames/cam/abc/0").frame_id
