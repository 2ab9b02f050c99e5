"""The audit log: chain, key, pseudonyms, tamper detection, crash recovery, rotation, prune."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import multiprocessing
import os
import stat
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import structlog
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sweeper import settings as settings_module
from sweeper.audit import AuditError, AuditKeyError, AuditLog
from sweeper.settings import Settings
from sweeper.store import Store, audit_head

KEY = "0123456789abcdef0123456789abcdef"
OTHER_KEY = "fedcba9876543210fedcba9876543210"
SUBJECT = "S-4711-Jansen"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No SWEEPER_ variables, no credentials directory and no system config file."""
    for name in list(os.environ):
        if name.upper().startswith("SWEEPER_") or name in (
            "CREDENTIALS_DIRECTORY",
            "STATE_DIRECTORY",
        ):
            monkeypatch.delenv(name)
    monkeypatch.setattr(settings_module, "DEFAULT_CONFIG", tmp_path / "no-such-config.yaml")


def make_settings(state: Path, key: str | None = KEY, segment_bytes: int = 1 << 24) -> Settings:
    credentials = {"audit-key": key} if key is not None else {}
    return Settings(
        state_dir=state,
        credentials=credentials,
        credentials_dir=None,
        audit_segment_bytes=segment_bytes,
    )


class Env:
    """A state directory with its store, and audit logs opened on it."""

    def __init__(self, state: Path) -> None:
        self.state = state
        self.stores: list[Store] = []

    def log(self, key: str | None = KEY, segment_bytes: int = 1 << 24) -> AuditLog:
        settings = make_settings(self.state, key, segment_bytes)
        store = Store.open(settings.state_database_url)
        self.stores.append(store)
        return AuditLog.open(settings, store)

    @property
    def audit_dir(self) -> Path:
        return self.state / "audit"

    def segments(self) -> list[Path]:
        return sorted(self.audit_dir.glob("audit-*.jsonl"))

    def lines(self, segment: int = 0) -> list[bytes]:
        return self.segments()[segment].read_bytes().splitlines(keepends=True)

    def write_lines(self, lines: list[bytes], segment: int = 0) -> None:
        self.segments()[segment].write_bytes(b"".join(lines))

    def head(self) -> tuple[int, str, str] | None:
        with self.stores[0].engine.connect() as conn:
            row = conn.execute(
                sa.select(audit_head.c.seq, audit_head.c.hash, audit_head.c.segment)
            ).first()
        return (row.seq, row.hash, row.segment) if row else None

    def set_head(self, seq: int, hash_: str, segment: str) -> None:
        with self.stores[0].engine.begin() as conn:
            conn.execute(audit_head.update().values(seq=seq, hash=hash_, segment=segment))


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    environment = Env(tmp_path / "state")
    yield environment
    for store in environment.stores:
        store.close()


def fill(log: AuditLog, count: int, plan_id: str = "plan-1") -> list[int]:
    return log.append_many(
        [{"event": "item_done", "subject": f"S{i}", "activity": "pupils"} for i in range(count)],
        actor="fg",
        plan_id=plan_id,
    )


def record(line: bytes) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(line)
    return parsed


def canonical(rec: dict[str, Any]) -> bytes:
    return json.dumps(rec, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def plain_hash(rec: dict[str, Any]) -> str:
    return hashlib.sha256(canonical({k: v for k, v in rec.items() if k != "hash"})).hexdigest()


# -- the chain ---------------------------------------------------------------------------------


def test_records_chain_onto_the_previous_hash(env: Env) -> None:
    """Each record's prev is the previous record's hash; the first's is 64 zeros."""
    fill(env.log(), 5)
    records = [record(line) for line in env.lines()]
    assert records[0]["prev"] == "0" * 64
    assert [r["seq"] for r in records] == list(range(1, 7))
    for before, after in itertools.pairwise(records):
        assert after["prev"] == before["hash"]


def test_lines_are_canonical_json(env: Env) -> None:
    """Every line is the record as JSON with sorted keys, no spaces and ASCII only."""
    env.log().append("plan_approved", "fg", plan_id="p", note='élève "quoted"', n=[1, 2.5])
    for line in env.lines():
        assert line == canonical(record(line)) + b"\n"


def test_append_returns_sequence_numbers(env: Env) -> None:
    """append returns the new record's seq, append_many one seq per record given."""
    log = env.log()
    first = log.append("plan_created", "fg", plan_id="p")
    assert first == 2  # record 1 is the first segment's anchor
    assert fill(log, 3) == [3, 4, 5]


def test_whole_log_verifies(env: Env) -> None:
    """An untouched log verifies, with every record counted."""
    log = env.log()
    fill(log, 10)
    result = log.verify()
    assert result.ok and result.records == 11 and result.first_bad is None


def test_empty_log_verifies(env: Env) -> None:
    """A log nothing was written to verifies, and verifying creates no files."""
    result = env.log().verify()
    assert result.ok and result.records == 0
    assert not env.audit_dir.exists()


def test_state_store_keeps_the_head(env: Env) -> None:
    """After an append, the store's head is the last record's seq, hash and segment."""
    fill(env.log(), 3)
    last = record(env.lines()[-1])
    assert env.head() == (last["seq"], last["hash"], "audit-000001.jsonl")


def test_every_record_field_is_present(env: Env) -> None:
    """A record has seq, at (UTC), actor, event, plan_id, subject_ref, details, prev, hash."""
    env.log().append("hold_placed", "fg", subject=SUBJECT, reason="court case")
    rec = record(env.lines()[-1])
    assert set(rec) == {
        "seq",
        "at",
        "actor",
        "event",
        "plan_id",
        "subject_ref",
        "details",
        "prev",
        "hash",
    }
    assert rec["at"].endswith("Z") and datetime.fromisoformat(rec["at"]).tzinfo is not None
    assert rec["details"] == {"reason": "court case"}


# -- the key -------------------------------------------------------------------------------------


def test_keyed_hashes_are_not_plain_sha256(env: Env) -> None:
    """With a key, a record's hash is an HMAC, not the SHA-256 anyone can compute."""
    fill(env.log(KEY), 1)
    rec = record(env.lines()[-1])
    assert rec["hash"] != plain_hash(rec)


def test_unkeyed_hashes_are_plain_sha256(env: Env) -> None:
    """Without a key, a record's hash is the SHA-256 of its canonical JSON without hash."""
    fill(env.log(None), 1)
    rec = record(env.lines()[-1])
    assert rec["hash"] == plain_hash(rec)


def rewrite_with_plain_hashes(env: Env, edit: Callable[[dict[str, Any]], None], at: int) -> None:
    """Edit record number `at` (0-based line) and recompute every hash after it as SHA-256."""
    records = [record(line) for line in env.lines()]
    edit(records[at])
    for index in range(at, len(records)):
        if index:
            records[index]["prev"] = records[index - 1]["hash"]
        records[index]["hash"] = plain_hash(records[index])
    env.write_lines([canonical(r) + b"\n" for r in records])
    last = records[-1]
    env.set_head(last["seq"], last["hash"], "audit-000001.jsonl")


def test_forger_without_the_key_is_detected(env: Env) -> None:
    """A forger who edits a record, recomputes plain hashes and even moves the store's head
    is caught at the edited record when the log is keyed."""
    log = env.log(KEY)
    fill(log, 6)

    def edit(rec: dict[str, Any]) -> None:
        rec["details"]["activity"] = "nothing-to-see"

    rewrite_with_plain_hashes(env, edit, at=3)
    result = log.verify()
    assert (result.ok, result.reason, result.first_bad, result.line) == (False, "edited", 4, 4)


def test_plain_chain_rewritten_is_caught_by_the_head(env: Env) -> None:
    """Without a key, a forger who recomputes the chain but cannot write the store is caught."""
    log = env.log(None)
    fill(log, 6)
    head = env.head()
    assert head is not None

    def edit(rec: dict[str, Any]) -> None:
        rec["details"]["activity"] = "nothing-to-see"

    rewrite_with_plain_hashes(env, edit, at=3)
    env.set_head(*head)
    result = log.verify()
    assert not result.ok and result.reason == "edited" and result.first_bad == 7


def test_keyed_log_needs_the_key_to_verify(env: Env) -> None:
    """Verifying a keyed log without the key is refused as a configuration error."""
    fill(env.log(KEY), 2)
    with pytest.raises(AuditKeyError, match="not configured"):
        env.log(None).verify()


def test_log_with_another_key_does_not_verify(env: Env) -> None:
    """A log written with one key fails verification under another, at its first record."""
    fill(env.log(KEY), 2)
    result = env.log(OTHER_KEY).verify()
    assert not result.ok and result.first_bad == 1 and "another audit key" in result.detail


def test_appending_to_a_keyed_log_without_the_key_is_refused(env: Env) -> None:
    """Without the key, nothing is appended to a keyed log (it would break the chain)."""
    fill(env.log(KEY), 2)
    before = env.lines()
    with pytest.raises(AuditKeyError):
        env.log(None).append("plan_created", "fg")
    assert env.lines() == before


def test_adding_a_key_starts_a_keyed_segment(env: Env) -> None:
    """A key configured later starts a new, keyed segment; the whole log still verifies."""
    fill(env.log(None), 2)
    log = env.log(KEY)
    fill(log, 2)
    assert len(env.segments()) == 2
    assert record(env.lines(1)[0])["details"]["mode"] == "hmac-sha256"
    assert log.verify().ok


def test_short_key_is_refused(env: Env) -> None:
    """A key credential shorter than 16 characters is refused with a way to make one."""
    with pytest.raises(AuditKeyError, match="openssl rand"):
        env.log("short")


# -- tampering -------------------------------------------------------------------------------------


def test_changed_byte_is_named_edited(env: Env) -> None:
    """A record with one byte changed is named, with its file and line, as edited."""
    log = env.log()
    fill(log, 5)
    lines = env.lines()
    lines[3] = lines[3].replace(b'"pupils"', b'"pupilz"')
    env.write_lines(lines)
    result = log.verify()
    assert (result.reason, result.first_bad, result.file, result.line) == (
        "edited",
        4,
        "audit-000001.jsonl",
        4,
    )
    assert str(result).startswith("record 4 in audit-000001.jsonl line 4: edited")


def test_deleted_record_is_named(env: Env) -> None:
    """A record removed from the middle is named as deleted."""
    log = env.log()
    fill(log, 5)
    lines = env.lines()
    del lines[2]
    env.write_lines(lines)
    result = log.verify()
    assert (result.reason, result.first_bad, result.line) == ("deleted", 3, 3)


def test_deleted_records_are_named_as_a_range(env: Env) -> None:
    """Several consecutive records removed are named from the first one."""
    log = env.log()
    fill(log, 6)
    lines = env.lines()
    del lines[2:5]
    env.write_lines(lines)
    result = log.verify()
    assert (result.reason, result.first_bad) == ("deleted", 3)
    assert "records 3 to 5 are missing" in result.detail


def test_deleted_first_record_is_named(env: Env) -> None:
    """Removing the first segment's anchor is named as record 1 deleted."""
    log = env.log()
    fill(log, 3)
    env.write_lines(env.lines()[1:])
    result = log.verify()
    assert (result.reason, result.first_bad) == ("deleted", 1)


def test_swapped_records_are_named_reordered(env: Env) -> None:
    """Two records swapped are named as reordered."""
    log = env.log()
    fill(log, 5)
    lines = env.lines()
    lines[2], lines[3] = lines[3], lines[2]
    env.write_lines(lines)
    result = log.verify()
    assert (result.reason, result.first_bad, result.line) == ("reordered", 4, 3)


def test_duplicated_record_is_named(env: Env) -> None:
    """A record copied a second time is named as out of order."""
    log = env.log()
    fill(log, 4)
    lines = env.lines()
    lines.insert(4, lines[2])
    env.write_lines(lines)
    result = log.verify()
    assert (result.reason, result.first_bad, result.line) == ("reordered", 3, 5)


def test_cut_tail_is_named_truncated(env: Env) -> None:
    """Whole records cut off the end are named from the first missing one."""
    log = env.log()
    fill(log, 5)
    env.write_lines(env.lines()[:-2])
    result = log.verify()
    assert (result.reason, result.first_bad, result.line) == ("truncated", 5, 5)
    assert "state store's head is record 6" in result.detail


def test_tail_cut_mid_record_is_named_truncated(env: Env) -> None:
    """A file cut in the middle of its last record is named as truncated at that record."""
    log = env.log()
    fill(log, 5)
    path = env.segments()[0]
    path.write_bytes(path.read_bytes()[:-40])
    result = log.verify()
    assert (result.reason, result.first_bad, result.line) == ("truncated", 6, 6)


def test_deleted_middle_segment_is_named_missing(env: Env) -> None:
    """A segment removed from the middle is named, with the first record it held."""
    log = env.log(segment_bytes=1024)
    fill(log, 20)
    segments = env.segments()
    assert len(segments) >= 4
    first_of_second = record(env.lines(1)[0])["seq"]
    segments[1].unlink()
    result = log.verify()
    assert (result.reason, result.first_bad, result.file) == (
        "missing",
        first_of_second,
        "audit-000002.jsonl",
    )


def test_deleted_first_segment_without_prune_is_named_missing(env: Env) -> None:
    """The oldest segment removed without prune is detected, though the rest chains."""
    log = env.log(segment_bytes=1024)
    fill(log, 20)
    env.segments()[0].unlink()
    result = log.verify()
    assert (result.reason, result.file) == ("missing", "audit-000001.jsonl")
    assert "no prune is recorded" in result.detail


def test_deleted_last_segment_is_named_truncated(env: Env) -> None:
    """The newest segment removed is named as truncated, in the file the head names."""
    log = env.log(segment_bytes=1024)
    fill(log, 20)
    last = env.segments()[-1]
    last.unlink()
    result = log.verify()
    assert (result.reason, result.file) == ("truncated", last.name)


def test_renamed_segment_is_detected(env: Env) -> None:
    """Segments swapped by renaming the files are detected."""
    log = env.log(segment_bytes=1024)
    fill(log, 20)
    first, second = env.segments()[1:3]
    first.rename(first.with_suffix(".tmp"))
    second.rename(first)
    first.with_suffix(".tmp").rename(second)
    result = log.verify()
    assert result.reason == "reordered" and "renamed" in result.detail


@pytest.fixture(scope="module")
def sample_log(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[AuditLog, list[Path]]]:
    """A keyed log of three segments, shared by the property test's examples."""
    state = tmp_path_factory.mktemp("sample") / "state"
    settings_ = make_settings(state, KEY, 1024)
    store = Store.open(settings_.state_database_url)
    log = AuditLog.open(settings_, store)
    fill(log, 12)
    yield log, sorted((state / "audit").glob("audit-*.jsonl"))
    store.close()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_single_byte_change_is_detected(
    sample_log: tuple[AuditLog, list[Path]], data: st.DataObject
) -> None:
    """Changing any one byte of any segment makes verification fail."""
    log, segments = sample_log
    path = data.draw(st.sampled_from(segments), label="segment")
    original = path.read_bytes()
    position = data.draw(st.integers(0, len(original) - 1), label="position")
    byte = data.draw(st.integers(0, 255).filter(lambda b: b != original[position]), label="byte")
    changed = bytearray(original)
    changed[position] = byte
    path.write_bytes(bytes(changed))
    try:
        result = log.verify()
    finally:
        path.write_bytes(original)
    assert not result.ok


# -- crashes ------------------------------------------------------------------------------------


def test_records_after_the_head_are_unconfirmed_until_the_next_append(env: Env) -> None:
    """A crash between the file write and the store update is reported, then confirmed."""
    log = env.log()
    fill(log, 3)
    before = env.head()
    assert before is not None
    fill(log, 2)
    env.set_head(*before)  # as if the process died before updating the store
    result = log.verify()
    assert (result.reason, result.first_bad) == ("unconfirmed", 5)
    env.log().append("plan_created", "fg")
    assert env.log().verify().ok
    recovered = list(env.log().records(event="audit_recovered"))
    assert [(r["details"]["from_seq"], r["details"]["to_seq"]) for r in recovered] == [(5, 6)]


def test_torn_last_line_is_cut_off_and_recorded(env: Env) -> None:
    """Part of a record left by a crash mid-write is reported, then cut off and recorded."""
    log = env.log()
    fill(log, 3)
    with env.segments()[0].open("ab") as handle:
        handle.write(b'{"actor":"fg","at":"20')
    assert log.verify().reason == "incomplete"
    env.log().append("plan_created", "fg")
    assert env.log().verify().ok
    recovered = next(env.log().records(event="audit_recovered"))
    assert recovered["details"]["discarded_bytes"] == 22


def test_append_refuses_a_truncated_log(env: Env) -> None:
    """Nothing is appended to a log cut short: chaining onto it would hide the cut."""
    log = env.log()
    fill(log, 5)
    env.write_lines(env.lines()[:-2])
    before = env.lines()
    with pytest.raises(AuditError, match="does not match the state store"):
        env.log().append("plan_created", "fg")
    assert env.lines() == before


def test_append_refuses_records_after_the_head_that_do_not_chain(env: Env) -> None:
    """Records after the head that do not chain onto it are not confirmed."""
    log = env.log(None)
    fill(log, 3)
    head = env.head()
    assert head is not None
    rec = record(env.lines()[-1])
    forged = dict(rec, seq=rec["seq"] + 1, prev="f" * 64, event="plan_approved")
    forged["hash"] = plain_hash(forged)
    with env.segments()[0].open("ab") as handle:
        handle.write(canonical(forged) + b"\n")
    with pytest.raises(AuditError):
        env.log(None).append("plan_created", "fg")


def test_store_without_head_adopts_the_log_on_append(env: Env) -> None:
    """A state store without a head reports the log unconfirmed; the next append adopts it."""
    log = env.log()
    fill(log, 3)
    with env.stores[0].engine.begin() as conn:
        conn.execute(audit_head.delete())
    assert log.verify().reason == "unconfirmed"
    env.log().append("plan_created", "fg")
    assert env.log().verify().ok
    recovered = next(env.log().records(event="audit_recovered"))
    assert recovered["details"]["adopted_seq"] == 4


def test_another_process_s_append_is_seen(env: Env) -> None:
    """Two log objects on one folder take turns without breaking the chain."""
    first, second = env.log(), env.log()
    for _ in range(3):
        first.append("plan_created", "fg")
        second.append("plan_created", "dpo")
    assert first.verify().ok and first.verify().records == 7


def append_in_process(state: str, actor: str, count: int) -> None:
    settings_ = make_settings(Path(state), KEY, 4096)
    store = Store.open(settings_.state_database_url)
    log = AuditLog.open(settings_, store)
    for index in range(count):
        if index % 10 == 0:
            log.append_many([{"event": "item_done", "n": index}] * 5, actor=actor)
        else:
            log.append("item_done", actor, n=index)
    store.close()


def test_two_processes_appending_keep_the_chain_whole(env: Env) -> None:
    """Appends from two processes at once interleave into one whole chain."""
    env.log().append("plan_created", "fg")  # create the store's tables before the race
    context = multiprocessing.get_context("fork")
    workers = [
        context.Process(target=append_in_process, args=(str(env.state), actor, 60))
        for actor in ("cli", "daemon")
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    log = env.log(segment_bytes=4096)
    result = log.verify()
    assert result.ok, str(result)
    actors = [r["actor"] for r in log.records(event="item_done")]
    assert actors.count("cli") == actors.count("daemon") == 60 + 6 * 4


_APPEND_FOREVER = """
import sys
from pathlib import Path
from sweeper.audit import AuditLog
from sweeper.settings import Settings
from sweeper.store import Store
settings = Settings(state_dir=Path(sys.argv[1]), credentials={"audit-key": sys.argv[2]},
                    credentials_dir=None, audit_segment_bytes=8192)
log = AuditLog.open(settings, Store.open(settings.state_database_url))
n = 0
while True:
    log.append_many([{"event": "item_done", "n": n + i} for i in range(7)], actor="daemon")
    log.append("item_skipped", "daemon", n=n)
    n += 8
"""


def test_kill_9_while_appending_leaves_a_log_the_next_append_repairs(env: Env) -> None:
    """After kill -9 at random points of appending, the next append leaves a whole chain."""
    import random
    import signal
    import subprocess
    import sys
    import time

    environ = {k: v for k, v in os.environ.items() if not k.startswith("SWEEPER_")}
    rng = random.Random(20240501)
    for _ in range(6):
        before = sum(p.stat().st_size for p in env.segments())
        proc = subprocess.Popen(
            [sys.executable, "-c", _APPEND_FOREVER, str(env.state), KEY], env=environ
        )
        # Kill it while it appends: once it has written, not while Python is still starting
        # (which can take seconds on a loaded machine).
        deadline = time.monotonic() + 60
        while sum(p.stat().st_size for p in env.segments()) <= before + 4096:
            assert time.monotonic() < deadline, "the appending process wrote nothing in 60 s"
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 0.3))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        env.log(segment_bytes=8192).append("execution_started", "daemon")
    log = env.log(segment_bytes=8192)
    result = log.verify()
    assert result.ok, str(result)
    assert [r["seq"] for r in log.records()] == list(range(1, result.records + 1))
    assert len(list(log.records(event="item_done"))) > 100


# -- rotation and prune ----------------------------------------------------------------------


def test_log_rotates_into_segments_that_continue_the_chain(env: Env) -> None:
    """Each new segment starts with an anchor carrying the previous segment's last hash."""
    fill(env.log(segment_bytes=1024), 20)
    segments = env.segments()
    assert len(segments) >= 3
    for index in range(1, len(segments)):
        anchor = record(env.lines(index)[0])
        last = record(env.lines(index - 1)[-1])
        assert anchor["event"] == "audit_segment"
        assert anchor["prev"] == last["hash"] and anchor["seq"] == last["seq"] + 1
        assert anchor["details"]["previous_segment"] == segments[index - 1].name


def test_prune_removes_old_segments_and_the_rest_verifies(env: Env) -> None:
    """Segments past the retention are removed whole, and what remains still verifies."""
    log = env.log(segment_bytes=1024)
    fill(log, 20)
    segments = env.segments()
    removed = log.prune(datetime.now(UTC) + timedelta(days=8 * 366))
    assert removed == segments[:-1]
    assert env.segments()[0] == segments[-1]  # the prune record may start one more
    result = log.verify()
    assert result.ok, str(result)


def test_prune_keeps_segments_within_the_retention(env: Env) -> None:
    """Segments younger than the retention are kept."""
    log = env.log(segment_bytes=1024)
    fill(log, 20)
    segments = env.segments()
    assert log.prune(datetime.now(UTC) + timedelta(days=6 * 365)) == []
    assert env.segments() == segments


def test_prune_is_audited(env: Env) -> None:
    """Prune appends a record naming the removed segments and the first one kept."""
    log = env.log(segment_bytes=1024)
    fill(log, 20)
    removed = log.prune(datetime.now(UTC) + timedelta(days=8 * 366), actor="dpo")
    pruned = next(log.records(event="audit_pruned"))
    assert pruned["actor"] == "dpo"
    assert pruned["details"]["removed"] == [p.name for p in removed]
    assert pruned["details"]["retention"] == "P7Y"


def test_prune_refuses_a_broken_log(env: Env) -> None:
    """A log that does not verify is not pruned: it is kept whole for investigation."""
    log = env.log(segment_bytes=1024)
    fill(log, 20)
    env.write_lines(env.lines()[:-1], segment=-1)
    with pytest.raises(AuditError, match="does not verify"):
        log.prune(datetime.now(UTC) + timedelta(days=8 * 366))
    assert len(env.segments()) > 1


def test_segment_removed_after_prune_is_detected(env: Env) -> None:
    """After a prune, removing the oldest remaining segment is detected."""
    log = env.log(segment_bytes=1024)
    fill(log, 20)
    log.prune(datetime.now(UTC) + timedelta(days=8 * 366))
    fill(log, 20)
    env.segments()[0].unlink()
    result = log.verify()
    assert result.reason == "missing" and "the last prune kept" in result.detail


# -- pseudonyms and secrets ------------------------------------------------------------------


def test_subject_is_never_written(env: Env) -> None:
    """Neither a subject given to append nor one nested in details appears in any file."""
    log = env.log(None)
    log.append("item_done", "fg", subject=SUBJECT, activity="pupils")
    log.append("hold_placed", "fg", target={"subject": SUBJECT})
    log.append_many([{"event": "item_skipped", "subject": SUBJECT}], actor="fg")
    for path in env.audit_dir.iterdir():
        assert SUBJECT.encode() not in path.read_bytes(), path
    refs = [r["subject_ref"] for r in log.records(subject=SUBJECT)]
    assert len(refs) == 2 and refs[0] == log.subject_ref(SUBJECT)


def test_subject_ref_is_stable_and_keyed(env: Env) -> None:
    """The same subject gets the same ref across opens; another key gives another ref."""
    ref = env.log(KEY).subject_ref(SUBJECT)
    assert env.log(KEY).subject_ref(SUBJECT) == ref
    assert len(ref) == 32 and SUBJECT not in ref
    other = Env(env.state.parent / "other")
    assert other.log(OTHER_KEY).subject_ref(SUBJECT) != ref


def test_pseudonym_key_file_is_made_once_and_private(env: Env) -> None:
    """Without a key credential, pseudonym.key is created once with mode 0600."""
    ref = env.log(None).subject_ref(SUBJECT)
    key_file = env.audit_dir / "pseudonym.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    content = key_file.read_bytes()
    assert env.log(None).subject_ref(SUBJECT) == ref
    assert key_file.read_bytes() == content


def test_keyed_log_needs_no_pseudonym_key_file(env: Env) -> None:
    """With a key credential, subject refs are derived from it and no key file is made."""
    env.log(KEY).append("item_done", "fg", subject=SUBJECT)
    assert not (env.audit_dir / "pseudonym.key").exists()


def test_pseudonym_key_file_outlives_a_key_added_later(env: Env) -> None:
    """Once pseudonym.key exists, refs stay the same after a key credential is added."""
    ref = env.log(None).subject_ref(SUBJECT)
    assert env.log(KEY).subject_ref(SUBJECT) == ref


def test_secrets_in_details_are_masked(env: Env) -> None:
    """Passwords, tokens, keys and URL passwords in details are never written."""
    log = env.log()
    log.append(
        "location_failed",
        "daemon",
        password="hunter2",
        connection={"api_key": "AKIA-SECRET", "url": "postgresql://sis:pw-in-url@db/sis"},
        tokens=["tok-1"],
    )
    raw = env.segments()[0].read_bytes()
    for secret in (b"hunter2", b"AKIA-SECRET", b"pw-in-url", b"tok-1"):
        assert secret not in raw
    details = record(env.lines()[-1])["details"]
    assert details["password"] == "***" and details["connection"]["api_key"] == "***"
    assert details["connection"]["url"] == "postgresql://sis:***@db/sis"


def test_details_become_plain_json(env: Env) -> None:
    """Datetimes are written in UTC, paths and other objects as text, sets as sorted lists."""
    log = env.log()
    moment = datetime(2024, 5, 1, 14, 0, tzinfo=UTC) + timedelta(hours=0)
    log.append("hold_placed", "fg", until=moment, path=Path("/srv/a"), tags={"b", "a"})
    details = record(env.lines()[-1])["details"]
    assert details == {
        "until": "2024-05-01T14:00:00.000000Z",
        "path": "/srv/a",
        "tags": ["a", "b"],
    }


def test_reserved_and_malformed_events_are_refused(env: Env) -> None:
    """Events the log writes itself, and names that are not lower-case words, are refused."""
    log = env.log()
    for event in ("audit_segment", "audit_pruned", "Plan Approved", ""):
        with pytest.raises(ValueError):
            log.append(event, "fg")


# -- reading -------------------------------------------------------------------------------


def test_records_filter_by_plan_event_and_subject(env: Env) -> None:
    """records() filters by plan id prefix, event (exact or prefix*) and subject."""
    log = env.log()
    log.append("plan_approved", "fg", plan_id="plan-a1")
    log.append("item_done", "daemon", plan_id="plan-a1", subject="S1")
    log.append("item_skipped", "daemon", plan_id="plan-b2", subject="S2")
    assert [r["event"] for r in log.records(plan_id="plan-a")] == ["plan_approved", "item_done"]
    assert [r["plan_id"] for r in log.records(event="item_*")] == ["plan-a1", "plan-b2"]
    assert [r["event"] for r in log.records(subject="S2")] == ["item_skipped"]
    assert list(log.records(subject="nobody")) == []


def test_records_filter_by_time(env: Env) -> None:
    """records() keeps records at or after since and before until."""
    log = env.log()
    log.append("plan_created", "fg")
    now = datetime.now(UTC)
    assert len(list(log.records(since=now - timedelta(minutes=1)))) == 2
    assert list(log.records(since=now + timedelta(minutes=1))) == []
    assert list(log.records(until=now - timedelta(minutes=1))) == []


def test_find_subject_says_what_rule_and_who_approved(env: Env) -> None:
    """find_subject lists the subject's records with rule, action and the plan's approvers."""
    log = env.log()
    log.append("plan_approved", "fg", plan_id="plan-1")
    log.append("plan_approved", "dpo", plan_id="plan-1")
    log.append(
        "item_done",
        "daemon",
        plan_id="plan-1",
        subject=SUBJECT,
        activity="pupil-administration",
        rule="P2Y from left_school, then delete",
        action="delete",
        system="sis",
    )
    log.append("item_done", "daemon", plan_id="plan-1", subject="someone-else")
    [row] = log.find_subject(SUBJECT)
    assert row["event"] == "item_done" and row["plan_id"] == "plan-1"
    assert row["rule"] == "P2Y from left_school, then delete" and row["action"] == "delete"
    assert row["approved_by"] == ["dpo", "fg"]


def test_find_subject_prefers_approvers_named_in_the_record(env: Env) -> None:
    """An item record's own approved_by (e.g. auto_approve) wins over the plan's approvals."""
    log = env.log()
    log.append("item_done", "daemon", subject=SUBJECT, approved_by=["auto_approve"])
    assert log.find_subject(SUBJECT)[0]["approved_by"] == ["auto_approve"]


def test_structlog_logger_appends_with_bound_context(env: Env) -> None:
    """The structlog logger turns each call, with its bound context, into one record."""
    log = env.log()
    bound = log.logger("daemon", plan_id="plan-1").bind(run_id="r1")
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))
    try:
        bound.info("execution_started", subject=SUBJECT)
    finally:
        structlog.reset_defaults()
    rec = record(env.lines()[-1])
    assert (rec["event"], rec["actor"], rec["plan_id"]) == ("execution_started", "daemon", "plan-1")
    assert rec["details"] == {"run_id": "r1"} and rec["subject_ref"] == log.subject_ref(SUBJECT)


def test_hmac_of_a_record_can_be_checked_independently(env: Env) -> None:
    """An auditor with the key can check a record with plain hmac: the hash covers the
    canonical JSON of the record without its hash, under a key derived from the credential."""
    env.log(KEY).append("plan_created", "fg")
    rec = record(env.lines()[-1])
    chain_key = hmac.new(KEY.encode(), b"ropa-sweeper audit chain", hashlib.sha256).digest()
    body = canonical({k: v for k, v in rec.items() if k != "hash"})
    assert hmac.new(chain_key, body, hashlib.sha256).hexdigest() == rec["hash"]
