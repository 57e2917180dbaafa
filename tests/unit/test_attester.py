"""The attester service's parts without EZKL or a node: request parsing, the order of its checks up to the
hash, the signing record, the rate limiter, key loading and its settings."""

from __future__ import annotations

import json
import math
import sqlite3
from pathlib import Path

import pytest

from sentinel.artifacts import ArtifactLayout
from sentinel.attester.record import SigningRecord
from sentinel.attester.server import RateLimiter
from sentinel.attester.service import Attester, Refusal, Target, parse_request
from sentinel.chain.keys import ATTESTER_ENV, attester_key, demo_key
from sentinel.config import load_config
from sentinel.data.io import market_csv_bytes
from sentinel.data.synthetic import generate
from sentinel.errors import AlreadySigned, AttesterError, ConfigError, SigningKeyError, SigningRecordError
from sentinel.zk.instances import BN254_R

BREAKER = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
GOOD = {"chain_id": 31337, "breaker": BREAKER, "window_id": 7, "window_end": 420, "input_hash": "0x" + "12" * 32}
KEY = demo_key(2)


# --- request parsing ------------------------------------------------------------------------------


def test_a_well_formed_request_parses():
    request = parse_request(dict(GOOD))
    assert (request.chain_id, request.breaker, request.window_id, request.window_end) == (31337, BREAKER, 7, 420)
    assert request.input_hash == int("12" * 32, 16)
    assert parse_request({**GOOD, "input_hash": "0x1"}).input_hash == 1  # short hex is a number like any other


@pytest.mark.parametrize(("change", "field", "fragment"), [
    ({"extra": 1}, "extra", "is not one of chain_id, breaker"),
    ({"chain_id": None}, "chain_id", "must be a JSON integer, not null"),
    ({"chain_id": "31337"}, "chain_id", "must be a JSON integer, not a string"),
    ({"window_id": True}, "window_id", "must be a JSON integer, not a boolean"),
    ({"window_end": 420.0}, "window_end", "must be a JSON integer, not a number"),
    ({"window_end": -1}, "window_end", "must be in 0..2^64-1, got -1"),
    ({"window_id": 2**64}, "window_id", "must be in 0..2^64-1"),
    ({"breaker": 5}, "breaker", "must be a JSON string, not an integer"),
    ({"breaker": BREAKER[2:]}, "breaker", "0x-prefixed 20-byte hex address"),
    ({"breaker": BREAKER + "00"}, "breaker", "0x-prefixed 20-byte hex address"),
    ({"input_hash": "12" * 32}, "input_hash", "0x-prefixed hex of at most 32 bytes"),
    ({"input_hash": "0x" + "ab" * 33}, "input_hash", "0x-prefixed hex of at most 32 bytes"),
    ({"input_hash": "0xzz"}, "input_hash", "0x-prefixed hex"),
    ({"input_hash": f"0x{BN254_R:064x}"}, "input_hash", "below the BN254 scalar field modulus"),
    ({"input_hash": ["0x1"]}, "input_hash", "must be a JSON string, not an array"),
])
def test_each_malformed_field_is_named(change, field, fragment):
    with pytest.raises(Refusal) as info:
        parse_request({**GOOD, **change})
    assert (info.value.status, info.value.reason) == (422, "malformed")
    assert f"field '{field}'" in info.value.message and fragment in info.value.message


@pytest.mark.parametrize("missing", sorted(GOOD))
def test_each_missing_field_is_named(missing):
    body = {k: v for k, v in GOOD.items() if k != missing}
    with pytest.raises(Refusal, match=f"field '{missing}' is missing") as info:
        parse_request(body)
    assert info.value.status == 422


@pytest.mark.parametrize("body", [[GOOD], "x", 3, None])
def test_a_body_that_is_not_an_object_is_malformed(body):
    with pytest.raises(Refusal, match="the body must be a JSON object") as info:
        parse_request(body)
    assert info.value.status == 422


# --- the signing record ---------------------------------------------------------------------------


def signer(calls: list[int], signature: bytes = b"\x01" * 65):
    def sign():
        calls.append(1)
        return KEY.address, signature
    return sign


def test_the_record_signs_once_and_answers_the_stored_signature_again(tmp_path: Path):
    record = SigningRecord(tmp_path / "signed.sqlite", clock=lambda: 1000.0)
    calls: list[int] = []
    row, new = record.sign_once(31337, BREAKER, 7, 420, 0xAB, signer(calls))
    assert new and calls == [1] and row.signature == b"\x01" * 65 and row.breaker == BREAKER.lower()
    again, new = record.sign_once(31337, BREAKER.upper().replace("0X", "0x"), 7, 420, 0xAB, signer(calls, b"\x02" * 65))
    assert not new and calls == [1] and again.signature == b"\x01" * 65  # not signed again
    assert record.last() == row and record.count() == 1 and record.signers() == [KEY.address]


@pytest.mark.parametrize(("end", "input_hash"), [(420, 0xAC), (421, 0xAB)])
def test_the_record_refuses_another_hash_or_end_for_a_signed_window(tmp_path: Path, end, input_hash):
    record = SigningRecord(tmp_path / "signed.sqlite")
    record.sign_once(31337, BREAKER, 7, 420, 0xAB, signer([]))
    calls: list[int] = []
    with pytest.raises(AlreadySigned) as info:
        record.sign_once(31337, BREAKER, 7, end, input_hash, signer(calls))
    assert calls == []
    assert str(info.value) == (f"already signed input hash 0x{0xAB:064x} (window end 420) for window 7 of breaker "
                               f"{BREAKER.lower()}; refusing to sign another")
    # another window, another breaker and another chain are other rows
    for args in ((31337, BREAKER, 8, 480), (31337, "0x" + "11" * 20, 7, 420), (1, BREAKER, 7, 420)):
        assert record.sign_once(*args, 0xAC, signer(calls))[1]
    assert record.count() == 4


def test_the_record_survives_reopening_and_is_shared_by_two_connections(tmp_path: Path):
    path = tmp_path / "signed.sqlite"
    first = SigningRecord(path)
    second = SigningRecord(path)  # another process on the same file sees the committed row at once
    row, _ = first.sign_once(31337, BREAKER, 7, 420, 0xAB, signer([]))
    with pytest.raises(AlreadySigned):
        second.sign_once(31337, BREAKER, 7, 420, 0xAC, signer([]))
    first.close()
    second.close()
    reopened = SigningRecord(path)
    assert reopened.get(31337, BREAKER, 7) == row
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()


def test_a_failed_signature_stores_nothing(tmp_path: Path):
    record = SigningRecord(tmp_path / "signed.sqlite")

    def broken():
        raise SigningKeyError("no")

    with pytest.raises(SigningKeyError):
        record.sign_once(31337, BREAKER, 7, 420, 0xAB, broken)
    assert record.get(31337, BREAKER, 7) is None
    assert record.sign_once(31337, BREAKER, 7, 420, 0xAC, signer([]))[1]  # the window is still free


def test_a_file_that_is_not_a_signing_record_is_refused(tmp_path: Path):
    path = tmp_path / "queue.sqlite"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE windows (window_id INTEGER)")
    db.commit()
    db.close()
    with pytest.raises(SigningRecordError, match="not an attester signing record"):
        SigningRecord(path)


# --- the rate limiter -----------------------------------------------------------------------------


def test_the_rate_limiter_is_a_token_bucket_per_client():
    now = [0.0]
    limiter = RateLimiter(2.0, 3, clock=lambda: now[0])
    assert [limiter.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]  # the burst
    assert limiter.take("a") == pytest.approx(0.5)  # one token comes every 1/rate s
    assert limiter.take("b") == 0.0  # another client has its own bucket
    now[0] = 0.5
    assert limiter.take("a") == 0.0
    assert limiter.take("a") == pytest.approx(0.5)
    now[0] = 100.0
    assert [limiter.take("a") for _ in range(4)][-1] > 0  # refilled to the burst, never beyond


def test_the_rate_limiter_forgets_idle_clients_beyond_its_cap():
    now = [0.0]
    limiter = RateLimiter(1.0, 2, clock=lambda: now[0], max_clients=3)
    for i in range(3):
        limiter.take(f"c{i}")
    now[0] = 10.0
    limiter.take("d")
    assert len(limiter._buckets) <= 3 and "d" in limiter._buckets


# --- keys -----------------------------------------------------------------------------------------


def keyfile(tmp_path: Path, text: str, mode: int = 0o600) -> Path:
    path = tmp_path / "attester.key"
    path.write_text(text)
    path.chmod(mode)
    return path


def test_the_key_comes_from_the_environment_first(tmp_path: Path):
    other = demo_key(3)
    path = keyfile(tmp_path, demo_key(4).secret + "\n")
    key = attester_key(1, str(path), 2, env={ATTESTER_ENV: other.secret})
    assert key.address == other.address and key.origin == f"env {ATTESTER_ENV}"
    assert other.secret not in repr(key) and other.secret[2:] not in str(key)


def test_the_key_comes_from_a_private_keyfile(tmp_path: Path):
    path = keyfile(tmp_path, "# attester 1\n" + demo_key(4).secret + "\n")
    key = attester_key(1, str(path), env={})
    assert key.address == demo_key(4).address and key.origin == f"{path} line 2"


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660])
def test_a_keyfile_others_can_read_is_refused(tmp_path: Path, mode):
    path = keyfile(tmp_path, demo_key(4).secret + "\n", mode)
    with pytest.raises(SigningKeyError, match="readable by others") as info:
        attester_key(1, str(path), env={})
    assert demo_key(4).secret[2:] not in str(info.value)


def test_a_keyfile_with_two_keys_is_refused(tmp_path: Path):
    path = keyfile(tmp_path, demo_key(3).secret + "\n" + demo_key(4).secret + "\n")
    with pytest.raises(SigningKeyError, match="signs with one key, the keyfile holds 2"):
        attester_key(1, str(path), env={})


def test_a_demo_account_only_on_a_local_anvil():
    assert attester_key(31337, demo_account=3, env={}) == demo_key(3)
    with pytest.raises(SigningKeyError, match="demo keys are refused on chain 1 "):
        attester_key(1, demo_account=3, env={})


def test_no_key_at_all_names_every_way_to_give_one():
    with pytest.raises(SigningKeyError, match=r"SENTINEL_ATTESTER_KEY, attester\.keyfile .* attester\.demo_account"):
        attester_key(31337, env={})


# --- settings -------------------------------------------------------------------------------------


def test_the_attester_settings_have_defaults_and_are_checked(tmp_path: Path):
    config = load_config(tmp_path, env={}).attester
    assert (config.host, config.port, config.max_age_seconds, config.max_body_bytes, config.rate_per_second,
            config.rate_burst, config.demo_account) == ("127.0.0.1", 9480, 1800, 2048, 20.0, 40, -1)
    assert load_config(tmp_path, env={"SENTINEL_ATTESTER__PORT": "9555"}).attester.port == 9555
    for setting, value, fragment in (("attester.breaker", "0x12", "attester.breaker must be"),
                                     ("attester.port", 0, "attester.port must be in 1..65535"),
                                     ("attester.rpc_url", "ws://node", "attester.rpc_url must be an http"),
                                     ("attester.rate_per_second", 0, "attester.rate_per_second must be > 0"),
                                     ("attester.max_body_bytes", 10, "attester.max_body_bytes must be >= 256")):
        with pytest.raises(ConfigError, match=fragment):
            load_config(tmp_path, {setting: value}, env={})


# --- the order of the checks, up to the hash (no EZKL needed before it) ---------------------------

WINDOW = 5
CADENCE = 60.0


@pytest.fixture
def lines() -> list[str]:
    return market_csv_bytes(generate(1, seed=3)).decode().splitlines()


def row_end(line: str) -> int:
    from sentinel.relay.replay import row_unix

    return math.floor(row_unix(line))


def project(tmp_path: Path, lines: list[str]) -> tuple[ArtifactLayout, Path]:
    """A project whose circuit manifest says window 5 at 60 s (the checks before the hash read nothing else)."""
    layout = ArtifactLayout(tmp_path / "project")
    layout.ensure(layout.circuits_dir)
    layout.circuit_manifest.write_text(json.dumps({"window": WINDOW, "cadence_seconds": CADENCE}))
    layout.compiled_circuit.write_bytes(b"")
    feed = tmp_path / "feed.csv"
    feed.write_text("\n".join(lines) + "\n")
    return layout, feed


def make_attester(tmp_path: Path, lines: list[str], now: float, **settings) -> Attester:
    layout, feed = project(tmp_path, lines)
    config = load_config(layout.root, {"attester.feed": str(feed), **settings}, env={})
    return Attester(layout, config, KEY, target=Target(31337, BREAKER), clock=lambda: now)


def ask(attester: Attester, end: int, input_hash: int = 0xAB, **change) -> tuple[int, str, str]:
    body = {**GOOD, "window_id": math.floor(end / CADENCE), "window_end": end, "input_hash": f"0x{input_hash:x}",
            **change}
    answer = attester.attest(body)
    return answer.status, answer.reason, str(answer.payload.get("error", ""))


def test_checks_before_the_hash_refuse_in_order(tmp_path: Path, lines: list[str]):
    rows = lines[1:21]  # 20 rows
    end, now = row_end(rows[9]), row_end(rows[-1])  # the window of rows 6..10; the clock at the newest row
    attester = make_attester(tmp_path, [lines[0], *rows], now=now)
    try:
        assert ask(attester, end, chain_id=1)[:2] == (422, "wrong_chain")
        status, reason, error = ask(attester, end, breaker="0x" + "12" * 20)
        assert (status, reason) == (422, "unknown_breaker") and "unknown breaker 0x1212" in error
        status, reason, error = ask(attester, end, window_id=math.floor(end / CADENCE) + 1)
        assert (status, reason) == (422, "window_id") and f"does not match window end {end}" in error
        status, reason, error = ask(attester, end - 1801)
        assert (status, reason) == (422, "stale") and "the limit is 1800 s" in error and "wall clock" in error
        assert ask(attester, now + 360)[:2] == (422, "future")
        status, reason, error = ask(attester, now + 60)
        assert (status, reason) == (422, "not_in_feed") and "is not yet in its feed (newest row ends" in error
        status, reason, error = ask(attester, row_end(rows[2]))  # only 3 rows up to it
        assert (status, reason) == (422, "no_window") and f"fewer than {WINDOW} rows" in error
        status, reason, error = ask(attester, end + 1)  # between two rows: no row ends there
        assert (status, reason) == (422, "no_window") and "ends at" in error
        # a window already signed: the same hash gets the stored signature back, another is refused (409)
        stored, _ = attester.record.sign_once(31337, BREAKER, math.floor(end / CADENCE), end, 0xAB,
                                              lambda: (KEY.address, b"\x07" * 65))
        answer = attester.attest({**GOOD, "window_id": math.floor(end / CADENCE), "window_end": end,
                                  "input_hash": "0xab"})
        assert (answer.status, answer.reason, answer.payload) == (200, "repeat", {
            "signer": KEY.address, "signature": "0x" + "07" * 65})
        status, reason, error = ask(attester, end, 0xAC)
        assert (status, reason) == (409, "equivocation") and "already signed input hash" in error
        health = attester.health()
        assert health["ready"] and health["last_signed_window"] == stored.window_id
        assert health["newest_row_end"] == now and health["feed_lag_seconds"] == pytest.approx(0, abs=1)
    finally:
        attester.close()


def test_a_gap_in_its_feed_leaves_no_window_to_sign(tmp_path: Path, lines: list[str]):
    rows = [*lines[1:11], *lines[13:20]]  # two rows missing: a gap of 3 cadences
    end = row_end(lines[14])  # 2 rows after the gap
    attester = make_attester(tmp_path, [lines[0], *rows], now=end)
    try:
        status, reason, error = ask(attester, end)
        assert (status, reason) == (422, "no_window") and "span a gap or a quarantined row" in error
        assert "feed.csv lines" in error
    finally:
        attester.close()


def test_a_record_signed_by_another_key_is_refused_at_start(tmp_path: Path, lines: list[str]):
    layout, feed = project(tmp_path, lines[:10])
    record = SigningRecord(layout.attester_record)
    record.sign_once(31337, BREAKER, 1, 60, 1, lambda: (demo_key(3).address, b"\x01" * 65))
    record.close()
    config = load_config(layout.root, {"attester.feed": str(feed)}, env={})
    with pytest.raises(AttesterError, match=f"holds signatures by {demo_key(3).address}"):
        Attester(layout, config, KEY, target=Target(31337, BREAKER))
