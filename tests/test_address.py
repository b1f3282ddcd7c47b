import pytest

from edgebus.broker.address import BrokerUrlError, TlsOptions, parse_broker_url


def test_full_url():
    address = parse_broker_url("mqtts://alice:s%3Acret@broker.example:8884")
    assert (address.host, address.port, address.tls) == ("broker.example", 8884, True)
    assert (address.username, address.password) == ("alice", "s:cret")
    assert "s:cret" not in address.url


def test_default_ports():
    assert parse_broker_url("mqtt://h").port == 1883
    assert parse_broker_url("mqtts://h").port == 8883


@pytest.mark.parametrize(
    ("url", "match"),
    [
        ("http://h:1", "scheme"),
        ("mqtt://:1883", "no host"),
        ("mqtt://h:99999", "malformed"),
        ("mqtt://h:1/path", "path"),
        ("", "empty"),
    ],
)
def test_bad_urls_are_one_line(url, match):
    with pytest.raises(BrokerUrlError, match=match) as info:
        parse_broker_url(url)
    assert "\n" not in str(info.value)


def test_missing_tls_file(tmp_path):
    with pytest.raises(BrokerUrlError, match="CA file"):
        parse_broker_url("mqtts://h", TlsOptions(ca_file=str(tmp_path / "ca.pem")))
