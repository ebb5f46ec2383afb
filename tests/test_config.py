import json

import pytest

from monument_ws.config import Config, schema
from monument_ws.protocol.errors import ConfigError


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (False, False),
        (True, True),
        ("data", "data"),
        ("passthrough", "passthrough"),
        ("DATA", "data"),
        ("false", False),
        ("0", False),
        ("off", False),
        ("no", False),
        ("true", True),
        ("1", True),
        ("on", True),
        ("yes", True),
    ],
)
def test_websocket_values_parse_as_documented(raw, expected):
    """false/true/"data"/"passthrough", and boolean strings, mean what docs/protocol.md and the configuration reference say."""
    assert Config.load({"websocket": raw}).websocket == expected


@pytest.mark.parametrize("raw", ["maybe", "flase", "sockets please", 2])
def test_an_unknown_websocket_value_is_an_error_listing_the_valid_ones(raw):
    """A typo must not turn sockets on: it is a ConfigError that names the valid values."""
    with pytest.raises(ConfigError) as refused:
        Config.load({"webSocket": raw})
    message = str(refused.value)
    assert "websocket" in message.lower()
    assert all(word in message for word in ("false", "true", "data", "passthrough"))


def test_the_cli_refuses_an_unknown_websocket_value_in_one_line():
    """``monument-ws run --websocket flase``: a usage error on stderr, exit code 2, no traceback."""
    from click.testing import CliRunner

    from monument_ws.cli import cli

    result = CliRunner().invoke(cli, ["run", "--websocket", "flase"])
    assert result.exit_code == 2
    assert "passthrough" in result.output
    assert "Traceback" not in result.output


def test_default_is_off():
    """No key at all means no socket (monument attached one anyway: not copied)."""
    assert Config().websocket is False
    assert Config.load().websocket is False


@pytest.mark.parametrize("value", ["false", "0"])
def test_environment_false_strings_mean_false(value):
    """MONUMENT_WS_WEBSOCKET=false in the environment turns sockets off."""
    cfg = Config.load({"websocket": True}, env={"MONUMENT_WS_WEBSOCKET": value})
    # code wins over the environment, so check the environment alone too
    assert cfg.websocket is True
    assert Config.load(env={"MONUMENT_WS_WEBSOCKET": value}).websocket is False


def test_aliases_and_precedence(tmp_path):
    """File < environment < code; camelCase aliases fill the same keys."""
    path = tmp_path / "ws.json"
    path.write_text(json.dumps({"webSockets": "data", "dataTimeout": 3, "path": "/file"}))
    cfg = Config.load(
        {"path": "/code"},
        file=path,
        env={"MONUMENT_WS_DATA_TIMEOUT": "7", "UNRELATED": "x"},
    )
    assert (cfg.websocket, cfg.data_timeout, cfg.path) == ("data", 7.0, "/code")


def test_toml_file_with_a_section(tmp_path):
    """A pyproject-style TOML file with a [monument_ws] table is read."""
    path = tmp_path / "ws.toml"
    path.write_text('[monument_ws]\nwebsocket = "passthrough"\nsocket_events = ["chat:*"]\n')
    cfg = Config.load(file=path)
    assert cfg.websocket == "passthrough"
    assert cfg.socket_events == ("chat:*",)


def test_list_from_environment_is_comma_separated():
    """Lists come from the environment as comma-separated strings."""
    cfg = Config.load(env={"MONUMENT_WS_SOCKET_EVENTS": "chat:*, data:get:*"})
    assert cfg.socket_events == ("chat:*", "data:get:*")


def test_unknown_key_names_the_nearest_key():
    """A typo fails loudly with the remedy."""
    with pytest.raises(ConfigError, match="did you mean 'data_timeout'"):
        Config.load({"data_timeuot": 3})


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("data_timeout", "soon", "expected a number"),
        ("max_bad_frames", 0, "at least 1"),
        ("compression", "maybe", "expected a boolean"),
        ("max_inflight", True, "expected an integer"),
    ],
)
def test_bad_values_name_the_key(key, value, message):
    """A value that does not parse names the key and what was expected."""
    with pytest.raises(ConfigError, match=message) as info:
        Config.load({key: value})
    assert key in str(info.value)


def test_direct_construction_is_parsed_too():
    """Config(...) in code goes through the same parsers as every other source."""
    assert Config(websocket="off").websocket is False  # type: ignore[arg-type]
    assert Config(data_timeout="2.5").data_timeout == 2.5  # type: ignore[arg-type]


def test_schema_documents_every_key():
    """Every key has a documentation line, an env variable and a CLI flag."""
    infos = schema()
    assert {i.name for i in infos} == set(Config().as_dict())
    for info in infos:
        assert info.doc.strip()
        assert info.env_var == "MONUMENT_WS_" + info.name.upper()
        assert info.flag.startswith("--")


def test_renamed_keys_still_work_and_warn_once_each(tmp_path, caplog, monkeypatch):
    """The old names of renamed keys (CHANGELOG.md) fill the new keys from code, files and
    the environment; each logs one deprecation warning per process, naming the new key."""
    from monument_ws import config as config_module

    monkeypatch.setattr(config_module, "_WARNED", set())
    path = tmp_path / "ws.json"
    path.write_text(json.dumps({"sendQueueLimit": 7, "queue_ttl": 9}))
    with caplog.at_level("WARNING", "monument_ws.config"):
        cfg = Config.load(
            {"max_queued": 3, "send_queue_bytes": 4096},
            file=path,
            env={"MONUMENT_WS_QUEUE_SIZE": "5"},
        )
        again = Config.load({"max_queued": 4})
    assert (cfg.max_waiting, cfg.send_buffer_bytes, cfg.send_buffer_frames) == (3, 4096, 7)
    assert (cfg.peer_queue_size, cfg.peer_queue_ttl, again.max_waiting) == (5, 9.0, 4)
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 5, warned  # max_queued once, though it was used twice
    assert (
        "configuration key 'max_queued' is deprecated and will be removed in 1.0; use 'max_waiting'"
        in warned
    )


def test_a_typo_is_never_told_to_use_a_deprecated_name():
    """Suggestions for an unknown key come from the current names only."""
    with pytest.raises(ConfigError, match="did you mean 'max_waiting'"):
        Config.load({"max_waitin": 1})
