"""The engine's ENGINE_* settings: each variable parsed, defaults, errors naming the variable."""

from pathlib import Path
from typing import Any

import pytest

from engine.errors import ConfigError
from engine.settings import VARIABLES, Settings


def test_without_any_variable_the_settings_are_the_defaults():
    assert Settings.from_env({}) == Settings()


def test_every_default_in_the_table_is_the_settings_default():
    defaults = Settings()
    for key, variable in VARIABLES.items():
        expected = None if variable.default is None else variable.parse(variable.default)
        assert getattr(defaults, key) == expected, variable.name


@pytest.mark.parametrize(
    ("name", "text", "key", "value"),
    [
        ("ENGINE_MODULE", "modules/kinto", "module", Path("modules/kinto")),
        ("ENGINE_HOST", "0.0.0.0", "host", "0.0.0.0"),
        ("PORT", "9000", "port", 9000),
        ("PORT", "0", "port", 0),
        ("ENGINE_API_TOKEN", "s3cret-token", "api_token", "s3cret-token"),
        ("ENGINE_PAGES_PER_CALL", "3", "pages_per_call", 3),
        ("ENGINE_MAX_CONNECTIONS", " 16 ", "max_connections", 16),
        ("ENGINE_LOG_LEVEL", "debug", "log_level", "DEBUG"),
        ("ENGINE_LOG_LEVEL", "Warning", "log_level", "WARNING"),
        ("ENGINE_MAX_ITEMS", "50", "max_items", 50),
    ],
)
def test_each_variable_is_parsed_into_its_setting(name: str, text: str, key: str, value: Any):
    assert getattr(Settings.from_env({name: text}), key) == value


def test_an_empty_variable_means_its_default():
    assert Settings.from_env({"PORT": "", "ENGINE_LOG_LEVEL": ""}) == Settings()


def test_variables_outside_the_table_are_ignored():
    assert Settings.from_env({"ENGINE_UNKNOWN": "x", "HOME": "/root"}) == Settings()


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("PORT", "http", "PORT: must be a whole number, not 'http'"),
        ("PORT", "70000", "PORT: must be a port number (0-65535)"),
        ("PORT", "-1", "PORT: must be a port number (0-65535)"),
        ("ENGINE_PAGES_PER_CALL", "0", "ENGINE_PAGES_PER_CALL: must be at least 1"),
        ("ENGINE_MAX_ITEMS", "0", "ENGINE_MAX_ITEMS: must be at least 1"),
        (
            "ENGINE_PAGES_PER_CALL",
            "2.5",
            "ENGINE_PAGES_PER_CALL: must be a whole number, not '2.5'",
        ),
        (
            "ENGINE_MAX_CONNECTIONS",
            "many",
            "ENGINE_MAX_CONNECTIONS: must be a whole number, not 'many'",
        ),
        (
            "ENGINE_LOG_LEVEL",
            "LOUD",
            "ENGINE_LOG_LEVEL: must be one of DEBUG, INFO, WARNING, ERROR",
        ),
    ],
)
def test_a_bad_value_is_a_config_error_naming_the_variable(name: str, text: str, message: str):
    with pytest.raises(ConfigError) as raised:
        Settings.from_env({name: text})
    assert str(raised.value) == message
    assert raised.value.exit_code == 2


def test_settings_are_read_from_the_process_environment_by_default(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("ENGINE_PAGES_PER_CALL", "7")

    assert Settings.from_env().pages_per_call == 7


def test_every_variable_is_documented_and_named_engine_or_port():
    for variable in VARIABLES.values():
        assert variable.help
        assert variable.name == "PORT" or variable.name.startswith("ENGINE_")
