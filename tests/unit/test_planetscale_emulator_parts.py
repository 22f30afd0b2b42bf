"""Unit tests of the emulator's pure parts: configuration and names, schema diff, deploy state
transitions, fault matching, and the MySQL protocol helpers of the branch proxy."""

from __future__ import annotations

import hashlib

import pytest

from planetscale_emulator import deploy_states as ds
from planetscale_emulator import mysql_protocol as mp
from planetscale_emulator.cli import config_from_args, parser
from planetscale_emulator.config import EmulatorConfig
from planetscale_emulator.cutover import held_name
from planetscale_emulator.faults import Fault
from planetscale_emulator.schema_diff import (
    Plan,
    canonical_vschema,
    compute_plan,
    instant_eligible,
)

BEFORE = "CREATE TABLE `t` (\n  `id` int(11) NOT NULL,\n  PRIMARY KEY (`id`)\n) ENGINE=InnoDB"
AFTER = (
    "CREATE TABLE `t` (\n  `id` int(11) NOT NULL,\n  `x` int(11) DEFAULT NULL,\n"
    "  PRIMARY KEY (`id`)\n) ENGINE=InnoDB"
)


def test_cli_defaults_and_prefix_from_the_dsn() -> None:
    config = config_from_args(
        parser().parse_args(
            [
                "--port",
                "7000",
                "--mysql-dsn",
                "mysql://root@127.0.0.1:3306/sbt_ps_x",
                "--keyspaces",
                "a, b",
            ]
        )
    )
    assert config.mysql_port == 7001 and config.db_prefix == "sbt_ps_x"
    assert config.keyspaces == ("a", "b") and config.main_branch == "main"
    assert config.public_host == "127.0.0.1"
    boxed = config_from_args(parser().parse_args(["--host", "0.0.0.0", "--advertise-host", "emulator"]))
    assert boxed.public_host == "emulator" and boxed.host == "0.0.0.0"


def test_physical_names_never_collide() -> None:
    config = EmulatorConfig(mysql_dsn="mysql://root@h/x", keyspaces=("meta", "b1_x"), db_prefix="p")
    names = {
        config.meta_schema,
        *(config.physical_database(b, k) for b in (1, 2, 3) for k in config.keyspaces),
    }
    assert len(names) == 7
    assert config.physical_database(1, "meta") == "p_meta" and config.meta_schema == "p__meta"


@pytest.mark.parametrize(
    "kwargs",
    [{"keyspaces": ("Bad",)}, {"keyspaces": ()}, {"db_prefix": "1x"}, {"copy_ticks": 0}],
)
def test_bad_configurations_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        EmulatorConfig(mysql_dsn="mysql://root@h", **kwargs)  # type: ignore[arg-type]


def test_plan_lists_creates_alters_drops_and_vschemas() -> None:
    plan = compute_plan(
        {"ks": {"t": BEFORE, "gone": BEFORE.replace("`t`", "`gone`")}},
        {"ks": {"t": AFTER, "new": BEFORE.replace("`t`", "`new`")}},
        {"ks": "{}"},
        {"ks": '{"tables": {"t": {}}}'},
    )
    assert [(c.table, c.kind) for c in plan.tables] == [
        ("gone", "drop"),
        ("new", "create"),
        ("t", "alter"),
    ]
    assert [v.keyspace for v in plan.vschemas] == ["ks"]
    assert Plan.from_json(plan.to_json()) == plan


def test_vschemas_compare_as_documents() -> None:
    assert canonical_vschema('{"a": 1, "b": 2}') == canonical_vschema('{ "b":2,"a":1 }')
    plan = compute_plan({}, {"ks": {}}, {"ks": '{"a": 1}'}, {"ks": '{ "a" : 1 }'})
    assert plan.empty


def test_instant_eligibility_only_for_appended_columns() -> None:
    added = compute_plan({"ks": {"t": BEFORE}}, {"ks": {"t": AFTER}}, {}, {})
    assert instant_eligible(added)
    removed = compute_plan({"ks": {"t": AFTER}}, {"ks": {"t": BEFORE}}, {}, {})
    assert not instant_eligible(removed)
    created = compute_plan({"ks": {}}, {"ks": {"t": BEFORE}}, {}, {})
    assert not instant_eligible(created)


def test_actions_are_accepted_only_in_their_states() -> None:
    assert ds.action_target("deploy", ds.READY) == ds.QUEUED
    assert ds.action_target("deploy", ds.PENDING) is None
    assert ds.action_target("cancel", ds.QUEUED) == ds.CANCELLED
    assert ds.action_target("cancel", ds.IN_PROGRESS) == ds.IN_PROGRESS_CANCEL
    assert ds.action_target("cancel", ds.COMPLETE_PENDING_REVERT) is None
    assert ds.action_target("revert", ds.COMPLETE_PENDING_REVERT) == ds.IN_PROGRESS_REVERT
    assert ds.action_target("skip-revert", ds.COMPLETE) is None
    assert set(ds.FINISHED) <= set(ds.ALL_STATES)


def test_held_table_names_fit_mariadb() -> None:
    assert held_name("o", 12, "product") == "_sbo12_product"
    long = held_name("o", 12, "x" * 64)
    assert len(long) <= 64 and long == held_name("o", 12, "x" * 64)


def fault(**kw: object) -> Fault:
    base = dict(
        id=1,
        kind="error",
        method=None,
        path_pattern=None,
        number=None,
        deploy_state=None,
        status=503,
        code="x",
        message=None,
        delay_ms=None,
        remaining=1,
    )
    base.update(kw)
    return Fault(**base)  # type: ignore[arg-type]


def test_request_faults_match_method_and_path() -> None:
    rule = fault(method="POST", path_pattern=r"/branches$")
    assert rule.matches_request("POST", "/v1/organizations/o/databases/d/branches")
    assert not rule.matches_request("GET", "/v1/organizations/o/databases/d/branches")
    assert not rule.matches_request("POST", "/v1/organizations/o/databases/d/branches/x")
    assert not fault(kind="stall").matches_request("GET", "/anything")


def test_deploy_faults_match_number_and_state() -> None:
    rule = fault(kind="stall", number=3, deploy_state="queued")
    assert rule.matches_deploy(3, "queued")
    assert not rule.matches_deploy(4, "queued") and not rule.matches_deploy(3, "submitting")
    assert fault(kind="fail_deploy", deploy_state="in_progress").matches_deploy(9, "in_progress")


def test_native_password_scramble_matches_the_reference_formula() -> None:
    salt, password = b"12345678901234567890", b"secret"
    stage1 = hashlib.sha1(password).digest()
    expected = bytes(
        a ^ b
        for a, b in zip(stage1, hashlib.sha1(salt + hashlib.sha1(stage1).digest()).digest(), strict=True)
    )
    assert mp.native_scramble(password, salt) == expected
    assert mp.native_scramble(b"", salt) == b""


def test_greeting_round_trips_and_hides_tls_from_clients() -> None:
    greeting = mp.Greeting(
        b"10.11.0-MariaDB",
        42,
        0xF7FE | mp.CLIENT_SSL | mp.CLIENT_COMPRESS | mp.CLIENT_PLUGIN_AUTH | (0x1 << 16),
        45,
        2,
        b"\x00" * 10,
        mp.new_salt(),
        mp.NATIVE_PASSWORD,
    )
    parsed = mp.Greeting.parse(greeting.build())
    assert parsed == greeting
    shown = greeting.for_clients()
    assert not shown.capabilities & mp.CLIENT_SSL and not shown.capabilities & mp.CLIENT_COMPRESS
    assert shown.salt != greeting.salt and len(shown.salt) == 20 and b"\x00" not in shown.salt


def test_handshake_response_round_trips_with_database() -> None:
    caps = mp.CLIENT_PROTOCOL_41 | mp.CLIENT_SECURE_CONNECTION | mp.CLIENT_PLUGIN_AUTH
    response = mp.HandshakeResponse(
        caps | mp.CLIENT_CONNECT_WITH_DB,
        1 << 24,
        45,
        b"\x00" * 23,
        "user",
        b"A" * 20,
        "commerce",
        mp.NATIVE_PASSWORD,
    )
    parsed = mp.HandshakeResponse.parse(response.build())
    assert (parsed.user, parsed.auth, parsed.database) == ("user", b"A" * 20, "commerce")
    without_db = mp.HandshakeResponse.parse(
        mp.HandshakeResponse(caps, 1 << 24, 45, b"\x00" * 23, "u", b"", None, mp.NATIVE_PASSWORD).build()
    )
    assert without_db.database is None and without_db.auth == b""


def test_err_packet_carries_code_and_message() -> None:
    packet = mp.err_packet(1, mp.ER_BAD_DB, "Unknown database 'x'", "42000")
    assert packet[3] == 1 and packet[4] == 0xFF
    assert int.from_bytes(packet[5:7], "little") == 1049 and packet.endswith(b"Unknown database 'x'")
