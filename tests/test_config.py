"""Configuration: TOML plus TOUCHPOINT_* overrides, every bad key or value named."""

from __future__ import annotations

from pathlib import Path

import pytest

from common import config as configuration
from common.config import ConfigError, EdgeConfig, HqConfig, from_dict, load_edge

MIRROR = {"device": {"store_id": "berlin-01", "device_id": "mirror-03"}}


def test_defaults_fill_every_optional_key() -> None:
    config = from_dict(EdgeConfig, MIRROR)
    assert config.device.role == "mirror"
    assert config.web.listen == "127.0.0.1:8080"
    assert config.reader is None and config.camera is None
    assert config.source == "/stores/berlin-01/devices/mirror-03"


def test_environment_overrides_file(tmp_path: Path) -> None:
    path = tmp_path / "edge.toml"
    path.write_text(
        '[device]\nstore_id = "berlin-01"\ndevice_id = "mirror-03"\n[reader]\nprotocol = "m100"\nurl = "loop://"\n'
    )
    env = {"TOUCHPOINT_READER_DEPARTURE_S": "1.5", "TOUCHPOINT_DEVICE_ROLE": "kiosk"}
    config = load_edge(path, env)
    assert config.reader is not None and config.reader.departure_s == 1.5
    assert config.device.role == "kiosk"


def test_environment_alone_can_enable_an_optional_section() -> None:
    env = {"TOUCHPOINT_CAMERA_SOURCE": "tests/qr"}
    config = from_dict(EdgeConfig, MIRROR, env)
    assert config.camera is not None and config.camera.source == "tests/qr"


def test_table_keys_come_from_file_and_environment() -> None:
    config = from_dict(HqConfig, {"hq": {"tokens": {"web": "w"}}}, {"TOUCHPOINT_HQ_TOKENS_POS": "p"})
    assert config.hq.tokens == {"web": "w", "pos": "p"}


@pytest.mark.parametrize(
    ("document", "env", "key"),
    [
        ({"device": {"store_id": "Berlin 01", "device_id": "m"}}, {}, "device.store_id"),
        ({"device": {"store_id": "b", "device_id": "m", "colour": "red"}}, {}, "device.colour"),
        ({"device": {"store_id": "b"}}, {}, "device.device_id"),
        ({**MIRROR, "screen": {}}, {}, "screen"),
        ({**MIRROR, "web": {"threads": "many"}}, {}, "web.threads"),
        ({**MIRROR, "web": {"listen": "8080"}}, {}, "web.listen"),
        ({**MIRROR, "mqtt": {"url": "http://broker"}}, {}, "mqtt.url"),
        ({**MIRROR, "reader": {"protocol": "nfc", "url": "loop://"}}, {}, "reader.protocol"),
        (MIRROR, {"TOUCHPOINT_OUTBOX_CAPACITY": "12.5"}, "outbox.capacity"),
        (MIRROR, {"TOUCHPOINT_DEVICE_STOREID": "x"}, "TOUCHPOINT_DEVICE_STOREID"),
        ({**MIRROR, "staff": {"pin": "12"}}, {}, "staff.pin"),
    ],
)
def test_bad_configuration_names_the_key(document: dict, env: dict, key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        from_dict(EdgeConfig, document, env)
    assert caught.value.key == key
    assert key in str(caught.value) and "allowed" in str(caught.value)


def test_missing_or_broken_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="existing TOML file"):
        load_edge(tmp_path / "nope.toml", {})
    broken = tmp_path / "broken.toml"
    broken.write_text("[device\n")
    with pytest.raises(ConfigError, match="valid TOML"):
        load_edge(broken, {})


def test_shipped_examples_load() -> None:
    examples = Path(__file__).parent.parent / "examples"
    assert load_edge(examples / "mirror.toml", {}).device.role == "mirror"
    assert load_edge(examples / "kiosk.toml", {}).device.role == "kiosk"
    assert configuration.load_hq(examples / "hq.toml", {}).hq.tokens


def test_reference_lists_every_key_with_help() -> None:
    keys = {row[0] for row in configuration.reference(EdgeConfig)}
    assert {"device.store_id", "reader.departure_s", "outbox.capacity", "mqtt.url"} <= keys
