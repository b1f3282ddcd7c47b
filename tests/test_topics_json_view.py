"""Topics.json_view and json_views: where the JSON copies of a site's topics go."""

import pytest

from edgebus.broker.matching import topic_matches
from edgebus.topics import TopicError, Topics


def test_json_view_puts_json_after_the_site():
    t = Topics("lab")
    assert t.json_view(t.frame_chunk("cam-1", 7, 3)) == "edgebus/v1/lab/json/frames/cam-1/7/3"
    assert t.json_view(t.status("n")) == "edgebus/v1/lab/json/status/n"
    assert t.json_view(t.deadletter()) == "edgebus/v1/lab/json/deadletter"
    assert t.json_view(t.sync_ack("n")) == "edgebus/v1/lab/json/sync/n/ack"


def test_json_view_maps_filters_the_same_way():
    t = Topics("lab")
    assert t.json_view(t.frames()) == "edgebus/v1/lab/json/frames/+/+/+"
    assert t.json_view(t.everything()) == "edgebus/v1/lab/json/#"


def test_json_views_matches_every_view_and_nothing_else():
    t = Topics("lab")
    assert t.json_views() == "edgebus/v1/lab/json/#"
    for topic in (t.result("e"), t.frame_end("c", 1), t.model_switch(), t.reply("n", "r1")):
        assert topic_matches(t.json_views(), t.json_view(topic))
        assert not topic_matches(t.json_views(), topic)
    assert not topic_matches(t.json_views(), Topics("other").json_view("edgebus/v1/other/x"))


@pytest.mark.parametrize(
    "topic",
    [
        "edgebus/v1/other/status/n",  # another site
        "edgebus/v1/lab",  # the site itself, no kind
        "edgebus/v1/lab/",
        "edgebus/v1/labs/status/n",  # a site whose name only starts with ours
        "other/v1/lab/status/n",
        "$share/g/edgebus/v1/lab/frames/+/+/+",
        "edgebus/v1/lab/json/status/n",  # a view already
        "",
    ],
)
def test_json_view_refuses_topics_outside_the_site(topic):
    with pytest.raises(TopicError):
        Topics("lab").json_view(topic)
