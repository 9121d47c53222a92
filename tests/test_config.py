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
    assert load_edge(examples / "two-cabins.toml", {}).zones == ["cabin-1", "cabin-2", "return-rail"]
    assert configuration.load_hq(examples / "hq.toml", {}).hq.tokens


def test_reference_lists_every_key_with_help() -> None:
    keys = {row[0] for row in configuration.reference(EdgeConfig)}
    assert {"device.store_id", "reader.departure_s", "outbox.capacity", "mqtt.url"} <= keys


TWO_CABINS = {
    **MIRROR,
    "readers": [
        {"protocol": "mercury", "url": "/dev/ttyUSB0", "zones": {"1": "cabin-1", "2": "cabin-2"}, "min_rssi": -65},
        {"protocol": "llrp", "url": "192.0.2.10", "zones": {"1": "return-rail"}, "port_min_rssi": {"1": -58}},
    ],
}


def test_readers_map_antenna_ports_to_zones_with_their_floors(tmp_path: Path) -> None:
    path = tmp_path / "edge.toml"
    path.write_text(
        '[device]\nstore_id = "berlin-01"\ndevice_id = "mirror-03"\n'
        '[[readers]]\nprotocol = "mercury"\nurl = "/dev/ttyUSB0"\nzones = {1 = "cabin-1", 2 = "cabin-2"}\n'
        "min_rssi = -65\nport_min_rssi = {2 = -60}\n"
        '[[readers]]\nprotocol = "m100"\nurl = "/dev/ttyUSB1"\nzone = "return-rail"\n'
        "[presence]\nmargin_db = 4\n"
    )
    config = load_edge(path, {"TOUCHPOINT_READERS_2_MIN_RSSI": "-70", "TOUCHPOINT_PRESENCE_HOLD_S": "3"})
    mercury, m100 = config.all_readers
    assert (mercury.port_zone(1), mercury.port_zone(2), mercury.port_zone(3), mercury.port_zone(None)) == (
        "cabin-1",
        "cabin-2",
        None,
        None,
    )
    assert (mercury.floor(1), mercury.floor(2), m100.floor(None), m100.port_zone(None)) == (
        -65,
        -60,
        -70,
        "return-rail",
    )
    assert config.zones == ["cabin-1", "cabin-2", "return-rail"]
    assert (config.presence.margin_db, config.presence.hold_s) == (4.0, 3.0)


def test_one_reader_section_keeps_working() -> None:
    config = from_dict(EdgeConfig, {**MIRROR, "reader": {"protocol": "m100", "url": "loop://", "zone": "cabin-3"}})
    assert config.readers == () and [r.zone for r in config.all_readers] == ["cabin-3"] and config.zones == ["cabin-3"]
    assert from_dict(EdgeConfig, MIRROR).zones == ["screen"]


@pytest.mark.parametrize(
    ("document", "env", "key"),
    [
        ({**TWO_CABINS, "reader": {"protocol": "m100", "url": "loop://"}}, {}, "readers"),
        ({**MIRROR, "readers": {"protocol": "m100"}}, {}, "readers"),
        ({**MIRROR, "readers": [{"protocol": "m100", "url": "x", "zones": {"1": "cabin-1"}}]}, {}, "readers[1].zones"),
        ({**MIRROR, "readers": [{"protocol": "llrp", "url": "x", "zones": {"0": "cabin-1"}}]}, {}, "readers[1].zones"),
        ({**MIRROR, "readers": [{"protocol": "llrp", "url": "x", "zones": {"1": "Cabin 1"}}]}, {}, "readers[1].zones"),
        ({**MIRROR, "readers": [{"protocol": "llrp", "url": "x", "zones": "cabin-1"}]}, {}, "readers[1].zones"),
        (
            {**MIRROR, "readers": [{"protocol": "llrp", "url": "x", "port_min_rssi": {"1": 5}}]},
            {},
            "readers[1].port_min_rssi",
        ),
        ({**MIRROR, "readers": [{"protocol": "m100", "url": "x", "min_rssi": -200}]}, {}, "readers[1].min_rssi"),
        ({**MIRROR, "readers": [{"protocol": "m100", "url": "x", "min_reads": 0}]}, {}, "readers[1].min_reads"),
        ({**MIRROR, "readers": [{"protocol": "mercury", "url": "x", "region": "mars"}]}, {}, "readers[1].region"),
        ({**MIRROR, "readers": [{"protocol": "m100"}]}, {}, "readers[1].url"),
        (TWO_CABINS, {"TOUCHPOINT_READERS_3_URL": "loop://"}, "TOUCHPOINT_READERS_3_URL"),
        (TWO_CABINS, {"TOUCHPOINT_READERS_1_COLOUR": "red"}, "TOUCHPOINT_READERS_1_COLOUR"),
        (
            {
                **MIRROR,
                "readers": [
                    {"protocol": "m100", "url": "a", "zone": "cabin-1"},
                    {"protocol": "m100", "url": "b", "zone": "cabin-1", "min_reads": 5},
                ],
            },
            {},
            "readers[2].min_reads",
        ),
        ({**MIRROR, "presence": {"hold_s": -1}}, {}, "presence.hold_s"),
    ],
)
def test_bad_reader_configuration_names_the_key(document: dict, env: dict, key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        from_dict(EdgeConfig, document, env)
    assert caught.value.key == key and "allowed" in str(caught.value)
