import pytest

from edgebus.config import ConfigError, load_settings


def test_layers_file_then_env_then_flags(tmp_path):
    path = tmp_path / "edgebus.toml"
    path.write_text('site = "filesite"\nheartbeat_s = 2\nrole = "camera"\n')
    env = {"EDGEBUS_SITE": "envsite", "EDGEBUS_QUEUE_LIMIT": "50"}
    settings = load_settings(path, {"role": "edge"}, environ=env)
    assert settings.site == "envsite"
    assert settings.heartbeat_s == 2.0
    assert settings.queue_limit == 50
    assert settings.role == "edge"


def test_unknown_key_is_named(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("sight = 'x'\n")
    with pytest.raises(ConfigError, match="unknown key 'sight'"):
        load_settings(path, environ={})


def test_unknown_env_key_is_named():
    with pytest.raises(ConfigError, match="EDGEBUS_COLOUR"):
        load_settings(None, environ={"EDGEBUS_COLOUR": "blue"})


def test_reserved_env_switches_are_not_settings():
    assert load_settings(None, environ={"EDGEBUS_REQUIRE_SERVICES": "1"}).site == "lab"


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("heartbeat_s = 'often'", "heartbeat_s expects float"),
        ("heartbeat_s = -1", "heartbeat_s: expected a positive number"),
        ("role = 'toaster'", "role: expected one of camera, edge, cloud, coordinator"),
        ("site = 'a/b'", "site: expected letters"),
        ("queue_limit = true", "queue_limit expects int"),
        ("[bus]\nx = 1", "unknown key 'bus'"),
        ("not toml =", "not valid TOML"),
    ],
)
def test_bad_values_are_one_line(tmp_path, text, match):
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=match) as info:
        load_settings(path, environ={})
    assert "\n" not in str(info.value)


def test_env_values_are_coerced_and_checked():
    assert load_settings(None, environ={"EDGEBUS_TLS_INSECURE": "yes"}).tls_insecure is True
    with pytest.raises(ConfigError, match="tls_insecure expects bool"):
        load_settings(None, environ={"EDGEBUS_TLS_INSECURE": "maybe"})


def test_missing_file_is_reported(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "none.toml", environ={})
