"""The audit log: append-only, hash-chained JSON lines that an auditor can verify.

One record per decision (plan created, approved or rejected, hold placed or released, execution
started and finished, each item done, skipped or failed, errors), as one line of canonical JSON
(sorted keys, no spaces, ASCII only)::

    {"actor":"fg","at":"2024-05-01T12:00:03.123456Z","details":{...},"event":"item_done",
     "hash":"…","plan_id":"…","prev":"…","seq":42,"subject_ref":"9c1f…"}

``hash`` is HMAC-SHA256 of the canonical JSON of the record without ``hash``, keyed with the
credential ``settings.audit_key_credential`` (``audit-key``) when it exists, or plain SHA-256
without it. ``prev`` is the previous record's hash, so each record vouches for all before it.
With a key, someone who can write the files but lacks the key cannot rewrite history: any
record they change or add fails its HMAC.

**Files.** The log lives in ``settings.audit_path`` as segments ``audit-000001.jsonl``,
``audit-000002.jsonl``, …. Every segment starts with an *anchor* record (event
``audit_segment``) that names the segment, the previous one and the chain's mode and key id,
and whose ``prev`` is the last hash of the previous segment (64 zeros for the first). A new
segment starts once the current one reaches ``audit_segment_bytes``. ``prune`` removes whole
segments whose last record is older than ``audit_retention`` and records that in an
``audit_pruned`` record, so what remains still verifies and a segment removed any other way
does not.

**The head.** The state store's ``audit_head`` row keeps the last record's seq, hash and
segment, so cutting records off the end is detected too. An append writes and fsyncs the
file *first* and updates the store *after*: a crash in between leaves records after the head,
which ``verify`` reports (``unconfirmed``) and the next append confirms by checking that they
chain onto the head and writing an ``audit_recovered`` record. The other order would leave a
head pointing past the end of the file after a crash, which is indistinguishable from a
truncation (a false alarm) and loses the record. A torn last line (a crash mid-write) is cut
off by the next append, which records its length and SHA-256 in ``audit_recovered``. An
append never continues a log that does not match the head: it raises ``AuditError``, because
chaining onto a truncated file would make the truncation verify.

**Pseudonyms.** Subjects are never written. ``append(..., subject=…)`` writes
``subject_ref`` = HMAC-SHA256(pseudonym key, subject), truncated to 32 hex digits, and
``find_subject`` recomputes it. The pseudonym key is the file ``pseudonym.key`` in the audit
folder when that exists (created once, mode 0600, with 32 random bytes, when no key credential
is configured), else derived from the key credential. Keep ``pseudonym.key`` out of copies
given to others: subject numbers are few enough to try them all with the key.

**Concurrency.** Appends from several processes (the CLI and the daemon) take an exclusive
``flock`` on ``audit.lock``; ``verify`` takes a shared one just long enough to note the head
and the segments' sizes, and a shared lock on ``prune.lock`` so that no segment disappears
while it reads. The head row is one per state store: several agents sharing one store must
share one audit folder.

Records are checked by the canonical form as well as the hash, so any change of any byte is
detected, and ``verify`` names the first bad record: ``edited``, ``deleted``, ``reordered``,
``truncated``, ``incomplete``, ``unconfirmed`` or ``missing`` (a segment removed from the
middle or the start without ``prune``).

Details are masked before they are written: values under keys that look like secrets
(password, secret, token, api_key, …) become ``***``, URLs lose their passwords, and a nested
``subject`` becomes a ``subject_ref``. Item keys and other details are written as given: do not
put names in them.
"""

from __future__ import annotations

import dataclasses
import fcntl
import getpass
import hashlib
import hmac
import json
import math
import os
import re
import secrets
from collections.abc import Collection, Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, date, datetime
from enum import Enum
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import structlog
from pydantic import BaseModel, SecretBytes, SecretStr

from sweeper.errors import CredentialMissing, SweeperError
from sweeper.logging import is_secret_key, redact
from sweeper.retention import Period
from sweeper.settings import Settings
from sweeper.store import Store, audit_head

__all__ = [
    "AuditError",
    "AuditKeyError",
    "AuditLog",
    "VerifyResult",
]

GENESIS = "0" * 64
SEGMENT = "audit_segment"
PRUNED = "audit_pruned"
RECOVERED = "audit_recovered"
RESERVED_EVENTS = frozenset({SEGMENT, PRUNED, RECOVERED})
HMAC_MODE = "hmac-sha256"
PLAIN_MODE = "sha256"
REF_HEX = 32
BATCH = 1000

_SEGMENT_NAME = re.compile(r"audit-(\d{6,})\.jsonl")
_EVENT_NAME = re.compile(r"[a-z][a-z0-9_.]{0,63}")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_HASH_BEFORE = b',"plan_id":'  # "hash" sorts between "event" and "plan_id"
_FIELDS = frozenset(
    {"actor", "at", "details", "event", "hash", "plan_id", "prev", "seq", "subject_ref"}
)
_encode = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
).encode


class AuditError(SweeperError):
    """The audit log cannot be written or read as asked (for example, it does not match the
    state store's head, so nothing more is appended to it)."""


class AuditKeyError(AuditError):
    """The audit log needs a key that is not configured, or was written with another key."""

    exit_code = 2


@dataclasses.dataclass(frozen=True)
class VerifyResult:
    """What ``AuditLog.verify`` found.

    Args:
        ok: the chain is whole and ends at the state store's head.
        records: how many records verified before the first bad one (all of them if ok).
        first_bad: the sequence number of the first bad record (where it is, or should be).
        file: the segment file that record is (or should be) in.
        reason: ``ok``, or one of ``edited``, ``deleted``, ``reordered``, ``truncated``,
            ``incomplete``, ``unconfirmed``, ``missing``.
        line: the 1-based line in ``file``, when there is one.
        detail: a sentence explaining what was found.
        segments: how many segment files were read.
    """

    ok: bool
    records: int
    first_bad: int | None
    file: str | None
    reason: str
    line: int | None = None
    detail: str = ""
    segments: int = 0

    def __str__(self) -> str:
        if self.ok:
            return (
                f"the audit log is whole: {self.records} record(s) in {self.segments} "
                f"segment(s)" + (f"; {self.detail}" if self.detail else "")
            )
        where = f" in {self.file}" if self.file else ""
        line = f" line {self.line}" if self.line else ""
        return f"record {self.first_bad}{where}{line}: {self.reason}: {self.detail}"


@dataclasses.dataclass(frozen=True)
class _Head:
    seq: int
    hash: str
    segment: str


@dataclasses.dataclass
class _Tail:
    """Where the next record goes: the current segment, its last record and its size."""

    segment: int
    seq: int
    hash: str
    size: int
    inode: int
    mode: str | None


@dataclasses.dataclass(frozen=True)
class _Entry:
    """A record before it has a seq, a time and a place in the chain."""

    event: str
    actor: str
    plan_id: str | None
    subject_ref: str | None
    details: dict[str, Any]


class AuditLog:
    """The audit log of one state store. Create it with ``AuditLog.open(settings, store)``."""

    def __init__(
        self,
        directory: Path,
        store: Store,
        *,
        key: bytes | None,
        segment_bytes: int,
        retention: Period,
    ) -> None:
        self.directory = directory
        self.store = store
        self.segment_bytes = segment_bytes
        self.retention = retention
        self._chain_key = _derive(key, b"ropa-sweeper audit chain") if key else None
        self._ref_key_source = key
        self._ref_key: bytes | None = None
        self.mode = HMAC_MODE if self._chain_key else PLAIN_MODE
        self.key_id = _key_id(self._chain_key) if self._chain_key else None
        self._tail: _Tail | None = None

    @classmethod
    def open(cls, settings: Settings, store: Store) -> AuditLog:
        """Return the audit log in ``settings.audit_path``, chained onto ``store``'s head.

        The HMAC key is the credential named by ``settings.audit_key_credential`` when it
        exists; without it, records are chained with plain SHA-256 (the store's head still
        detects changes, but someone who can write both the files and the store could rewrite
        them). Subject pseudonyms always need a key: when there is no key credential, a random
        32-byte key is generated once and kept in ``pseudonym.key`` (mode 0600) in the audit
        folder; once that file exists it is used even after a key credential is added, so that
        ``subject_ref`` values stay comparable.

        Raise AuditKeyError if the key credential exists but cannot be read or is too short.
        Nothing is created on disk until a record is appended or a pseudonym is needed.
        """
        name = settings.audit_key_credential
        key: bytes | None = None
        try:
            secret = settings.credential(name).get_secret_value()
        except CredentialMissing as err:
            if isinstance(err.__cause__, OSError):
                raise AuditKeyError(f"the audit key: {err}") from err
        else:
            if len(secret) < 16:
                raise AuditKeyError(
                    f"the audit key (credential {name!r}) is shorter than 16 characters; "
                    "make one with: openssl rand -hex 32"
                )
            key = secret.encode("utf-8")
        return cls(
            settings.audit_path,
            store,
            key=key,
            segment_bytes=settings.audit_segment_bytes,
            retention=settings.audit_retention,
        )

    # -- writing ---------------------------------------------------------------------------

    def append(
        self,
        event: str,
        actor: str,
        *,
        plan_id: str | None = None,
        subject: str | None = None,
        **details: Any,
    ) -> int:
        """Append one record and return its sequence number.

        Args:
            event: what happened, e.g. ``plan_approved``, ``hold_placed``, ``item_done``.
            actor: who did it (a user name, or the daemon's name).
            plan_id: the plan it concerns, if any.
            subject: the data subject it concerns, if any. Never written: only its
                ``subject_ref`` pseudonym is.
            details: anything else an auditor needs (activity, rule, action, system, reason,
                approved_by, …); secrets are masked.

        Raise AuditError if the log does not match the state store's head, AuditKeyError if
        the log was written with a key that is not configured now.
        """
        entry = {"event": event, "plan_id": plan_id, "subject": subject, **details}
        return self.append_many([entry], actor=actor)[0]

    def append_many(
        self,
        records: Iterable[Mapping[str, Any]],
        *,
        actor: str | None = None,
        plan_id: str | None = None,
    ) -> list[int]:
        """Append many records, with one write, fsync and store update per thousand; return
        their sequence numbers.

        Args:
            records: mappings with ``event`` and optionally ``actor``, ``plan_id`` and
                ``subject``; every other key is a detail.
            actor: the actor of records that do not name one.
            plan_id: the plan of records that do not name one.
        """
        seqs: list[int] = []
        batch: list[_Entry] = []
        for record in records:
            batch.append(self._entry(record, actor, plan_id))
            if len(batch) >= BATCH:
                seqs += self._write(batch)
                batch = []
        if batch:
            seqs += self._write(batch)
        return seqs

    def logger(self, actor: str, **context: Any) -> Any:
        """Return a structlog logger whose every call appends one record.

        ``log = audit.logger("daemon", plan_id=p)`` then ``log.info("item_done", subject=s,
        activity=…)``: the bound context (``actor``, ``plan_id``, …) and the call's keywords
        make the record; the level is not recorded.
        """
        return structlog.wrap_logger(
            _StructlogSink(self),
            processors=[_pass_event],
            wrapper_class=structlog.BoundLogger,
            context_class=dict,
            actor=actor,
            **context,
        )

    def subject_ref(self, subject: str) -> str:
        """Given a subject id, return its pseudonym as it appears in the log (creating the
        pseudonym key if there is none yet)."""
        ref = self._ref(subject, create=True)
        assert ref is not None
        return ref

    def _ref(self, subject: str, *, create: bool) -> str | None:
        key = self._pseudonym_key(create=create)
        if key is None:
            return None
        digest = hmac.new(key, str(subject).strip().encode("utf-8"), hashlib.sha256)
        return digest.hexdigest()[:REF_HEX]

    def prune(self, now: datetime, *, actor: str = "sweeper") -> list[Path]:
        """Remove whole segments whose last record is older than the audit retention, oldest
        first, never the current one; return the paths removed.

        The removal is recorded first (an ``audit_pruned`` record naming the segments and the
        first one kept), then the files are removed, so that the remaining chain verifies and a
        crash in between leaves only extra segments. Raise AuditError if the log does not
        verify: a broken log is kept whole for whoever investigates it.
        """
        with self._lock("prune.lock", fcntl.LOCK_EX), self._lock("audit.lock", fcntl.LOCK_EX):
            result = self._check(self._snapshot())
            if not result.ok:
                raise AuditError(f"the audit log is not pruned while it does not verify: {result}")
            segments = self._segments()
            removable = self._prunable(segments, now)
            if not removable:
                return []
            _, kept_path = segments[len(removable)]
            anchor = _parse(_first_line(kept_path) or b"")
            entry = _Entry(
                PRUNED,
                actor,
                None,
                None,
                {
                    "removed": [p.name for _, p in removable],
                    "first_kept_segment": kept_path.name,
                    "first_kept_seq": anchor["seq"] if anchor else None,
                    "retention": str(self.retention),
                },
            )
            self._write_locked([entry])
            for _, path in removable:
                path.unlink()
            _fsync_dir(self.directory)
            return [p for _, p in removable]

    def prunable(self, now: datetime) -> list[Path]:
        """Return the segments ``prune(now)`` would remove, without removing them."""
        return [p for _, p in self._prunable(self._segments(), now)]

    # -- reading ---------------------------------------------------------------------------

    def records(
        self,
        *,
        plan_id: str | None = None,
        subject: str | None = None,
        event: str | Collection[str] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Yield the records, oldest first, that match every filter given. Unreadable lines
        are skipped: ``verify`` is what reports them.

        Args:
            plan_id: the plan's id or a prefix of it.
            subject: a subject id (matched by its pseudonym).
            event: an event name, a prefix ending in ``*``, or a collection of those.
            since: records at or after this time.
            until: records before this time.
        """
        ref = self._ref(subject, create=False) if subject is not None else None
        if subject is not None and ref is None:
            return  # no pseudonym key yet, so no record names a subject
        events = [event] if isinstance(event, str) else list(event or [])
        exact = {e for e in events if not e.endswith("*")}
        prefixes = tuple(e[:-1] for e in events if e.endswith("*"))
        after = _format_time(since) if since is not None else None
        before = _format_time(until) if until is not None else None
        for path in [p for _, p in self._segments()]:
            try:
                handle = path.open("rb")
            except FileNotFoundError:
                continue  # pruned while we read
            with handle:
                for raw in handle:
                    if not raw.endswith(b"\n"):
                        continue
                    record = _parse(raw[:-1], strict=False)
                    if record is None:
                        continue
                    if plan_id is not None and not (record["plan_id"] or "").startswith(plan_id):
                        continue
                    if ref is not None and record["subject_ref"] != ref:
                        continue
                    name = record["event"]
                    if (
                        events
                        and name not in exact
                        and not (prefixes and name.startswith(prefixes))
                    ):
                        continue
                    if after is not None and record["at"] < after:
                        continue
                    if before is not None and record["at"] >= before:
                        continue
                    yield record

    def find_subject(self, subject: str) -> list[dict[str, Any]]:
        """Given a subject id, return what happened to that subject's data, oldest first:
        one dict per record about the subject with its time, event, plan, activity, rule,
        action, system, location, reason and who approved it (from the record, else from the
        plan's ``plan_approved`` records)."""
        ref = self._ref(subject, create=False)
        if ref is None:
            return []
        approvals: dict[str, list[str]] = {}
        found: list[dict[str, Any]] = []
        for record in self.records():
            if record["event"] == "plan_approved" and record["plan_id"]:
                approvals.setdefault(record["plan_id"], []).append(record["actor"])
            if record["subject_ref"] == ref:
                found.append(record)
        rows = []
        for record in found:
            details = record["details"]
            approved = details.get("approved_by")
            if approved is None:
                approved = approvals.get(record["plan_id"] or "", [])
            if isinstance(approved, str):
                approved = [approved]
            rows.append(
                {
                    "seq": record["seq"],
                    "at": record["at"],
                    "event": record["event"],
                    "actor": record["actor"],
                    "plan_id": record["plan_id"],
                    "activity": details.get("activity"),
                    "rule": details.get("rule"),
                    "action": details.get("action"),
                    "system": details.get("system"),
                    "location": details.get("location"),
                    "reason": details.get("reason"),
                    "approved_by": sorted(set(map(str, approved))),
                    "subject_ref": ref,
                }
            )
        return rows

    def verify(self) -> VerifyResult:
        """Check the whole chain against itself and the state store's head; name the first
        bad record. Raise AuditKeyError if the log is keyed and the key is not configured."""
        with self._lock("prune.lock", fcntl.LOCK_SH):
            with self._lock("audit.lock", fcntl.LOCK_SH):
                snapshot = self._snapshot()
            return self._check(snapshot)

    # -- writing, under the lock ---------------------------------------------------------------

    def _entry(self, record: Mapping[str, Any], actor: str | None, plan_id: str | None) -> _Entry:
        details = dict(record)
        event = details.pop("event", None)
        who = details.pop("actor", None) or actor
        plan = details.pop("plan_id", None) or plan_id
        subject = details.pop("subject", None)
        if not isinstance(event, str) or not _EVENT_NAME.fullmatch(event):
            raise ValueError(
                f"audit event {event!r}: use a lower-case name such as item_done or plan_approved"
            )
        if event in RESERVED_EVENTS:
            raise ValueError(f"audit event {event!r} is written by the audit log itself")
        if not isinstance(who, str) or not who.strip():
            raise ValueError(f"audit event {event!r} needs an actor")
        return _Entry(
            event,
            who,
            str(plan) if plan is not None else None,
            self.subject_ref(subject) if subject not in (None, "") else None,
            self._clean(details),
        )

    def _clean(self, details: Mapping[str, Any]) -> dict[str, Any]:
        cleaned = _jsonable(details, self.subject_ref)
        assert isinstance(cleaned, dict)
        return cleaned

    def _write(self, entries: list[_Entry]) -> list[int]:
        with self._lock("audit.lock", fcntl.LOCK_EX):
            return self._write_locked(entries)

    def _write_locked(self, entries: list[_Entry]) -> list[int]:
        """Write entries after the tail: file first (written and fsynced), then the head."""
        tail, recovered = self._current_tail()
        at = _format_time(datetime.now(UTC))
        chunks: list[tuple[int, bool, list[bytes]]] = []
        seqs: list[int] = []
        wanted = [(e, False) for e in recovered] + [(e, True) for e in entries]
        for entry, returned in wanted:
            if tail.segment == 0 or tail.size >= self.segment_bytes or tail.mode != self.mode:
                previous = _segment_name(tail.segment) if tail.segment else None
                tail = _Tail(tail.segment + 1, tail.seq, tail.hash, 0, 0, self.mode)
                chunks.append((tail.segment, True, []))
                anchor = _Entry(
                    SEGMENT,
                    "sweeper",
                    None,
                    None,
                    {
                        "segment": _segment_name(tail.segment),
                        "previous_segment": previous,
                        "mode": self.mode,
                        "key_id": self.key_id,
                        "ref_key_id": _key_id(self._pseudonym_key() or b""),
                    },
                )
                line = self._seal(anchor, tail, at)
                tail.size += len(line)
                chunks[-1][2].append(line)
            elif not chunks:
                chunks.append((tail.segment, False, []))
            line = self._seal(entry, tail, at)
            tail.size += len(line)
            chunks[-1][2].append(line)
            if returned:
                seqs.append(tail.seq)
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o750)
        try:
            for number, created, lines in chunks:
                path = self.directory / _segment_name(number)
                flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | (os.O_EXCL if created else 0)
                fd = os.open(path, flags, 0o640)
                try:
                    _write_all(fd, b"".join(lines))
                    os.fsync(fd)
                    tail.inode = os.fstat(fd).st_ino
                finally:
                    os.close(fd)
                if created:
                    _fsync_dir(self.directory)
        except OSError as err:
            self._tail = None
            raise AuditError(f"cannot write the audit log in {self.directory}: {err}") from err
        self._set_head(_Head(tail.seq, tail.hash, _segment_name(tail.segment)))
        self._tail = tail
        return seqs

    def _seal(self, entry: _Entry, tail: _Tail, at: str) -> bytes:
        """Give entry the next seq after tail, chain it, return its line; advance tail."""
        record: dict[str, Any] = {
            "actor": entry.actor,
            "at": at,
            "details": entry.details,
            "event": entry.event,
            "plan_id": entry.plan_id,
            "prev": tail.hash,
            "seq": tail.seq + 1,
            "subject_ref": entry.subject_ref,
        }
        body = _body(record)
        hash_ = _hash(body, self._chain_key if self.mode == HMAC_MODE else None)
        tail.seq, tail.hash = record["seq"], hash_
        return _line(body, hash_) + b"\n"

    def _current_tail(self) -> tuple[_Tail, list[_Entry]]:
        """Return where the next record goes, and the recovery records to write first.

        Fast path: nothing changed on disk since this object's last append. Otherwise the tail
        is read from disk and checked against the state store's head.
        """
        cached = self._tail
        if cached is not None:
            path = self.directory / _segment_name(cached.segment)
            try:
                st = os.stat(path)
            except FileNotFoundError:
                st = None
            if (
                st is not None
                and (st.st_size, st.st_ino) == (cached.size, cached.inode)
                and not (self.directory / _segment_name(cached.segment + 1)).exists()
            ):
                return cached, []
        self._tail = None
        return self._reconcile()

    def _reconcile(self) -> tuple[_Tail, list[_Entry]]:
        recovered: list[_Entry] = []
        head = self._get_head()
        segments = self._segments()
        while segments:
            number, path = segments[-1]
            end, _, fragment = _tail_offsets(path)
            if fragment:
                recovered.append(
                    _recovery(
                        "an incomplete record at the end of the file was cut off "
                        "(an append was interrupted)",
                        segment=path.name,
                        discarded_bytes=len(fragment),
                        discarded_sha256=hashlib.sha256(fragment).hexdigest(),
                    )
                )
                with path.open("r+b") as handle:
                    handle.truncate(end)
                    os.fsync(handle.fileno())
            if end == 0:  # nothing complete in it: a rotation was interrupted
                path.unlink()
                _fsync_dir(self.directory)
                segments.pop()
                continue
            break
        if not segments:
            if head is not None:
                raise AuditError(
                    f"the audit log in {self.directory} has no segments, but the state store's "
                    f"head is record {head.seq} in {head.segment}: run `sweeper audit verify`"
                )
            return _Tail(0, 0, GENESIS, 0, 0, None), recovered
        number, path = segments[-1]
        anchor = _parse(_first_line(path) or b"")
        if anchor is None or anchor["event"] != SEGMENT:
            raise AuditError(f"{path} does not start with its anchor record: run verify")
        mode = anchor["details"].get("mode")
        self._check_key(mode, anchor["details"].get("key_id"), path)
        last_line = _last_line(path)
        last = _parse(last_line or b"")
        if last is None or _hash(_body(last), self._key_for(mode)) != last["hash"]:
            raise AuditError(
                f"the last record of {path} is damaged: nothing is appended to a broken log; "
                "run `sweeper audit verify`"
            )
        st = path.stat()
        tail = _Tail(number, last["seq"], last["hash"], st.st_size, st.st_ino, mode)
        if head is None:
            recovered.append(
                _recovery(
                    "the state store had no audit head (a new or restored state store?): "
                    "the log's last record was adopted",
                    adopted_seq=last["seq"],
                )
            )
        elif (head.seq, head.hash) != (last["seq"], last["hash"]):
            if last["seq"] > head.seq and self._chains_from(head, segments):
                recovered.append(
                    _recovery(
                        "records after the state store's head were written by an append "
                        "interrupted before the store was updated; they chain onto the head",
                        from_seq=head.seq + 1,
                        to_seq=last["seq"],
                    )
                )
            else:
                raise AuditError(
                    f"the audit log does not match the state store: it ends at record "
                    f"{last['seq']}, the store's head is record {head.seq} in {head.segment}. "
                    "Nothing is appended to a broken log: run `sweeper audit verify`"
                )
        return tail, recovered

    def _chains_from(self, head: _Head, segments: list[tuple[int, Path]]) -> bool:
        """Return whether the records after the head's record chain onto it, intact."""
        start = _segment_number(head.segment)
        expected: int | None = None
        prev = head.hash
        for number, path in segments:
            if start is None or number < start:
                continue
            key: bytes | None = None
            with path.open("rb") as handle:
                for index, raw in enumerate(handle):
                    record = _parse(raw.rstrip(b"\n"))
                    if record is None:
                        return False
                    if index == 0:
                        key = self._key_for(record["details"].get("mode"))
                    if expected is None:
                        if record["seq"] == head.seq:
                            if record["hash"] != head.hash:
                                return False
                            expected = head.seq + 1
                        continue
                    if (
                        record["seq"] != expected
                        or record["prev"] != prev
                        or _hash(_body(record), key) != record["hash"]
                    ):
                        return False
                    expected, prev = expected + 1, record["hash"]
        return expected is not None

    def _check_key(self, mode: Any, key_id: Any, path: Path) -> None:
        if mode == HMAC_MODE:
            if self._chain_key is None:
                raise AuditKeyError(
                    f"{path.name} is keyed (key id {key_id}), but the audit key is not "
                    "configured: supply the credential named by the setting "
                    "audit_key_credential"
                )
            if key_id != self.key_id:
                raise AuditKeyError(
                    f"{path.name} was written with another audit key (key id {key_id}; the "
                    f"configured key's id is {self.key_id})"
                )
        elif mode != PLAIN_MODE:
            raise AuditError(f"{path.name}: unknown chain mode {mode!r}")

    def _key_for(self, mode: Any) -> bytes | None:
        return self._chain_key if mode == HMAC_MODE else None

    # -- the state store's head ----------------------------------------------------------

    def _get_head(self) -> _Head | None:
        with self.store.engine.connect() as conn:
            row = conn.execute(
                sa.select(audit_head.c.seq, audit_head.c.hash, audit_head.c.segment).where(
                    audit_head.c.id == 1
                )
            ).first()
        return _Head(int(row.seq), row.hash, row.segment) if row is not None else None

    def _set_head(self, head: _Head) -> None:
        values = {
            "seq": head.seq,
            "hash": head.hash,
            "segment": head.segment,
            "at": datetime.now(UTC),
        }
        try:
            with self.store.engine.begin() as conn:
                updated = conn.execute(
                    audit_head.update().where(audit_head.c.id == 1).values(**values)
                )
                if updated.rowcount == 0:
                    conn.execute(audit_head.insert().values(id=1, **values))
        except sa.exc.SQLAlchemyError as err:
            raise AuditError(
                f"record {head.seq} is in the audit log, but the state store's head could not "
                f"be updated ({type(err).__name__}); the next append confirms it"
            ) from err

    # -- verification ------------------------------------------------------------------------

    def _snapshot(self) -> tuple[_Head | None, list[tuple[int, Path, int]]]:
        """Return the head and each segment with its size now (later appends are not read)."""
        segments = []
        for number, path in self._segments():
            try:
                segments.append((number, path, path.stat().st_size))
            except FileNotFoundError:
                continue
        return self._get_head(), segments

    def _check(self, snapshot: tuple[_Head | None, list[tuple[int, Path, int]]]) -> VerifyResult:
        head, segments = snapshot
        checker = _Checker(self, head, segments)
        return checker.run()

    def _segments(self) -> list[tuple[int, Path]]:
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            return []
        found = []
        for name in names:
            match = _SEGMENT_NAME.fullmatch(name)
            if match:
                found.append((int(match.group(1)), self.directory / name))
        return sorted(found)

    def _prunable(self, segments: list[tuple[int, Path]], now: datetime) -> list[tuple[int, Path]]:
        removable = []
        for number, path in segments[:-1]:  # never the current segment
            last = _parse(_last_line(path) or b"")
            if last is None:
                break
            at = datetime.fromisoformat(last["at"])
            if not self.retention.add_to(at) < now:
                break
            removable.append((number, path))
        return removable

    # -- keys and locks ----------------------------------------------------------------------

    def _pseudonym_key(self, *, create: bool = True) -> bytes | None:
        """Return the pseudonym key; without one, create it, or return None if not create."""
        if self._ref_key is None:
            path = self.directory / "pseudonym.key"
            try:
                self._ref_key = bytes.fromhex(path.read_text(encoding="ascii").strip())
            except FileNotFoundError:
                if self._ref_key_source is not None:
                    self._ref_key = _derive(self._ref_key_source, b"ropa-sweeper subject ref")
                elif create:
                    self._ref_key = _create_key_file(path)
            except (OSError, ValueError) as err:
                raise AuditKeyError(f"cannot read the pseudonym key {path}: {err}") from err
        return self._ref_key

    @contextmanager
    def _lock(self, name: str, kind: int) -> Iterator[None]:
        """Hold an flock on a lock file in the audit folder. A reader that cannot open the
        lock file (a read-only account, a folder not made yet) reads without it."""
        path = self.directory / name
        fd: int | None = None
        try:
            if kind == fcntl.LOCK_SH:
                fd = os.open(path, os.O_RDONLY)
            else:
                self.directory.mkdir(parents=True, exist_ok=True, mode=0o750)
                fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o640)
        except OSError as err:
            if kind != fcntl.LOCK_SH:
                raise AuditError(f"cannot lock the audit log: {err}") from err
        if fd is None:
            yield
            return
        try:
            fcntl.flock(fd, kind)
            yield
        finally:
            os.close(fd)  # closing releases the lock


class _Checker:
    """One pass over a snapshot of the log that stops checking at the first bad record."""

    def __init__(
        self, log: AuditLog, head: _Head | None, segments: list[tuple[int, Path, int]]
    ) -> None:
        self.log = log
        self.head = head
        self.segments = segments
        self.count = 0
        self.expected = 1
        self.prev = GENESIS
        self.last: tuple[int, str, int] | None = None  # seq, file, line of the last good record
        self.keyed = False
        self.pruned_start: int | None = None
        self.first_kept: int | None = None
        self.torn: tuple[str, int] | None = None  # file, line of a last line cut short

    def fail(
        self, reason: str, first_bad: int, file: str | None, line: int | None, detail: str
    ) -> VerifyResult:
        return VerifyResult(
            False, self.count, first_bad, file, reason, line, detail, len(self.segments)
        )

    def run(self) -> VerifyResult:
        head = self.head
        if not self.segments:
            if head is None:
                return VerifyResult(True, 0, None, None, "ok", detail="the log is empty")
            return self.fail(
                "truncated",
                1,
                head.segment,
                None,
                f"no segment files are left in {self.log.directory}, but the state store's "
                f"head is record {head.seq} in {head.segment}",
            )
        failure = self.walk()
        missing = self.missing_start()
        if missing is not None:
            return missing
        if failure is not None:
            return failure
        if self.last is None:
            return self.fail(
                "truncated", 1, self.segments[0][1].name, 1, "the log has no complete record"
            )
        seq, file, line = self.last
        if self.torn is not None:
            torn_file, torn_line = self.torn
            if head is not None and head.seq == seq and torn_file == self.segments[-1][1].name:
                return self.fail(
                    "incomplete",
                    seq + 1,
                    torn_file,
                    torn_line,
                    f"the file ends with part of a record after record {seq}, the state store's "
                    "head: an append was interrupted; the next append cuts it off",
                )
            return self.fail(
                "truncated",
                seq + 1,
                torn_file,
                torn_line,
                f"the file was cut in the middle of the record after record {seq}",
            )
        if head is None:
            return self.fail(
                "unconfirmed",
                1,
                self.segments[0][1].name,
                1,
                f"the state store has no audit head, so a cut tail cannot be ruled out (a new "
                f"or restored state store?); the log ends at record {seq}, and the next append "
                "adopts it",
            )
        if seq < head.seq:
            same = head.segment == file
            return self.fail(
                "truncated",
                seq + 1,
                head.segment,
                line + 1 if same else None,
                f"records {seq + 1} to {head.seq} are missing: the log ends at record {seq} "
                f"in {file}, but the state store's head is record {head.seq} in {head.segment}",
            )
        if seq > head.seq:
            where = self.locate(head.seq + 1)
            return self.fail(
                "unconfirmed",
                head.seq + 1,
                where[0] if where else file,
                where[1] if where else None,
                f"records {head.seq + 1} to {seq} come after the state store's head (record "
                f"{head.seq}): an append was interrupted before the store was updated, or "
                "records were added; the next append checks and confirms them",
            )
        detail = f"it ends at record {seq}, the state store's head"
        if self.pruned_start is not None:
            detail += f"; the segments before {_segment_name(self.pruned_start)} were pruned"
        return VerifyResult(True, self.count, None, None, "ok", None, detail, len(self.segments))

    def walk(self) -> VerifyResult | None:
        """Check every record in order; return the first failure, but keep reading after it
        for intact ``audit_pruned`` records, which decide whether a missing start is one."""
        failure: VerifyResult | None = None
        previous_no: int | None = None
        previous_name: str | None = None
        key: bytes | None = None
        for index, (number, path, size) in enumerate(self.segments):
            name = path.name
            if failure is None and previous_no is not None and number != previous_no + 1:
                gone = [_segment_name(n) for n in range(previous_no + 1, number)]
                failure = self.fail(
                    "missing",
                    self.expected,
                    gone[0],
                    None,
                    f"{', '.join(gone[:3])}{' …' if len(gone) > 3 else ''} "
                    f"{'is' if len(gone) == 1 else 'are'} gone: {name} follows {previous_name}",
                )
            for line_no, raw in _lines(path, size):
                parsed = _parse_body(raw[:-1]) if raw.endswith(b"\n") else None
                record, body = parsed if parsed is not None else (None, b"")
                if line_no == 1 and record is not None and record["event"] == SEGMENT:
                    key = self.log._key_for(record["details"].get("mode"))
                if failure is not None:
                    self.note_prune(record, key)
                    continue
                if not raw.endswith(b"\n"):
                    self.torn = (name, line_no)  # only ever a file's last line
                    if index < len(self.segments) - 1:
                        failure = self.fail(
                            "truncated",
                            self.expected,
                            name,
                            line_no,
                            "this segment was cut in the middle of a record",
                        )
                    continue
                if record is None:
                    failure = self.fail(
                        "edited",
                        self.expected,
                        name,
                        line_no,
                        "the line is not a well-formed record in canonical form",
                    )
                    continue
                if line_no == 1:
                    failure = self.start_segment(record, index, number, name, previous_name, key)
                    if failure is not None:
                        continue
                if _hash(body, key) != record["hash"]:
                    failure = self.fail(
                        "edited",
                        self.expected,
                        name,
                        line_no,
                        "its hash does not match its content",
                    )
                    continue
                failure = self.check_place(record, name, line_no)
                if failure is not None:
                    continue
                if record["event"] == PRUNED:
                    self.first_kept = _segment_number(record["details"].get("first_kept_segment"))
                self.count += 1
                self.expected = record["seq"] + 1
                self.prev = record["hash"]
                self.last = (record["seq"], name, line_no)
            previous_no, previous_name = number, name
        return failure

    def start_segment(
        self,
        record: dict[str, Any],
        index: int,
        number: int,
        name: str,
        previous: str | None,
        key: bytes | None,
    ) -> VerifyResult | None:
        """Check a segment's first record, its anchor; for the first segment present, take
        the chain's starting point from it."""
        details = record["details"]
        if record["event"] != SEGMENT:
            keys = [key, self.log._chain_key, None]
            intact = any(_hash(_body(record), k) == record["hash"] for k in keys)
            return self.fail(
                "deleted" if intact else "edited",
                self.expected if index or number == 1 else max(record["seq"] - 1, 1),
                name,
                1,
                "the segment does not start with its anchor record"
                if intact
                else "its hash does not match its content",
            )
        if details.get("segment") != name:
            return self.fail(
                "reordered",
                record["seq"],
                name,
                1,
                f"this file's anchor names it {details.get('segment')!r}: the file was renamed",
            )
        mode = details.get("mode")
        try:
            self.log._check_key(mode, details.get("key_id"), Path(name))
        except AuditKeyError as err:
            if self.log._chain_key is None:
                raise
            return self.fail("edited", record["seq"], name, 1, f"{err}, or the anchor was edited")
        except AuditError as err:
            return self.fail("edited", record["seq"], name, 1, str(err))
        if mode == PLAIN_MODE and self.keyed:
            return self.fail(
                "edited",
                record["seq"],
                name,
                1,
                "an unkeyed segment follows keyed ones: the chain was recomputed without the key",
            )
        self.keyed = self.keyed or mode == HMAC_MODE
        if index == 0:
            if number != 1:  # the segments before were pruned: checked at the end
                self.pruned_start = number
                self.expected = record["seq"]
                self.prev = record["prev"]
        elif details.get("previous_segment") != previous:
            return self.fail(
                "reordered",
                record["seq"],
                name,
                1,
                f"its anchor follows {details.get('previous_segment')!r}, not {previous!r}",
            )
        return None

    def check_place(self, record: dict[str, Any], name: str, line_no: int) -> VerifyResult | None:
        """Check that a record with a valid hash is where the chain expects it."""
        seq = record["seq"]
        if seq > self.expected:
            later = self.locate(self.expected, after=(name, line_no))
            if later is not None:
                return self.fail(
                    "reordered",
                    seq,
                    name,
                    line_no,
                    f"record {self.expected} should come before it; it is at {later[0]} "
                    f"line {later[1]}",
                )
            gap = (
                f"record {self.expected} is"
                if seq == self.expected + 1
                else f"records {self.expected} to {seq - 1} are"
            )
            return self.fail(
                "deleted",
                self.expected,
                name,
                line_no,
                f"{gap} missing: record {seq} follows "
                + (f"record {self.expected - 1}" if self.expected > 1 else "the start"),
            )
        if seq < self.expected:
            return self.fail(
                "reordered", seq, name, line_no, f"it comes after record {self.expected - 1}"
            )
        if record["prev"] != self.prev:
            if self.last is not None:
                _, file, line = self.last
                return self.fail(
                    "edited",
                    seq - 1,
                    file,
                    line,
                    f"record {seq} does not chain onto it: it was changed and its hash recomputed",
                )
            return self.fail("edited", seq, name, line_no, "it does not chain onto the log")
        head = self.head
        if head is not None and seq == head.seq and record["hash"] != head.hash:
            return self.fail(
                "edited",
                seq,
                name,
                line_no,
                "it is not the record the state store's head names: the chain up to here "
                "was recomputed",
            )
        return None

    def note_prune(self, record: dict[str, Any] | None, key: bytes | None) -> None:
        """After a failure, still take note of intact ``audit_pruned`` records."""
        if (
            record is not None
            and record["event"] == PRUNED
            and _hash(_body(record), key) == record["hash"]
        ):
            self.first_kept = _segment_number(record["details"].get("first_kept_segment"))

    def missing_start(self) -> VerifyResult | None:
        """A log whose first segments are gone verifies only if ``prune`` removed them."""
        start = self.pruned_start
        if start is None or (self.first_kept is not None and start <= self.first_kept):
            return None
        path = self.segments[0][1]
        anchor = _parse(_first_line(path) or b"")
        first_seq = int(anchor["seq"]) if anchor else 1
        pruned = (
            f"the last prune kept {_segment_name(self.first_kept)} onwards"
            if self.first_kept is not None
            else "no prune is recorded"
        )
        return self.fail(
            "missing",
            max(first_seq - 1, 1),
            _segment_name(start - 1),
            None,
            f"the log starts at {path.name}, but {pruned}: segments were removed without "
            "`sweeper audit prune`",
        )

    def locate(self, seq: int, after: tuple[str, int] | None = None) -> tuple[str, int] | None:
        """Return the file and line of the record numbered seq (after a place), if any."""
        started = after is None
        for _, path, size in self.segments:
            for line_no, raw in _lines(path, size):
                if not started:
                    started = after == (path.name, line_no)
                    continue
                record = _parse(raw.rstrip(b"\n"))
                if record is not None and record["seq"] == seq:
                    return path.name, line_no
        return None


class _StructlogSink:
    """The end of the audit logger's structlog chain: each call appends one record."""

    def __init__(self, audit: AuditLog) -> None:
        self.audit = audit

    def msg(self, **record: Any) -> None:
        self.audit.append_many([record])

    debug = info = warning = warn = error = critical = exception = fatal = log = msg


def _pass_event(_logger: Any, _method: str, event_dict: Any) -> Any:
    return event_dict


# -- records and their canonical form ------------------------------------------------------------


def _body(record: Mapping[str, Any]) -> bytes:
    """Return the canonical JSON of a record without its hash: what the hash covers."""
    return _encode({k: v for k, v in record.items() if k != "hash"}).encode("ascii")


def _line(body: bytes, hash_: str) -> bytes:
    """Given a record's body and hash, return its canonical line (without the newline).

    The hash goes just before the top-level ``,"plan_id":``: the last one in the body, since
    a quote inside a JSON string is escaped and the keys after it hold no objects.
    """
    at = body.rindex(_HASH_BEFORE)
    return body[:at] + b',"hash":"' + hash_.encode("ascii") + b'"' + body[at:]


def _hash(body: bytes, key: bytes | None) -> str:
    if key is None:
        return hashlib.sha256(body).hexdigest()
    return hmac.new(key, body, hashlib.sha256).hexdigest()


def _parse(raw: bytes, *, strict: bool = True) -> dict[str, Any] | None:
    """Given a line without its newline, return the record, or None unless it is a record
    (in canonical form, if strict, so that any changed byte shows)."""
    parsed = _parse_body(raw, strict=strict)
    return parsed[0] if parsed is not None else None


def _parse_body(raw: bytes, *, strict: bool = True) -> tuple[dict[str, Any], bytes] | None:
    """Like ``_parse``, but also return the record's body (empty if not strict)."""
    try:
        record = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(record, dict) or record.keys() != _FIELDS:
        return None
    seq = record["seq"]
    if (
        not isinstance(seq, int)
        or isinstance(seq, bool)
        or seq < 1
        or not all(isinstance(record[k], str) for k in ("actor", "at", "event", "prev", "hash"))
        or not isinstance(record["details"], dict)
        or not isinstance(record["plan_id"], str | None)
        or not isinstance(record["subject_ref"], str | None)
    ):
        return None
    if not strict:
        return record, b""
    if not _HEX64.fullmatch(record["hash"]):
        return None
    try:
        body = _body(record)
    except ValueError:
        return None
    if _line(body, record["hash"]) != raw:
        return None
    return record, body


def _jsonable(value: Any, pseudonym: Any, key: str = "") -> Any:
    """Return value as plain JSON data, with secrets masked and nested subjects pseudonymised."""
    if key and is_secret_key(key):
        return "***"
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, str):
        return redact(value) if "@" in value else value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, SecretStr | SecretBytes):
        return "***"
    if isinstance(value, datetime):
        return _format_time(value) if value.tzinfo is not None else value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Enum):
        return _jsonable(value.value, pseudonym, key)
    if isinstance(value, BaseModel):
        return _jsonable(value.model_dump(mode="json"), pseudonym, key)
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for k, v in value.items():
            name = str(k)
            kind = type(v)
            if name == "subject" and isinstance(v, str | int):
                out["subject_ref"] = pseudonym(str(v))
            elif (v is None or kind is int or (kind is str and "@" not in v)) and not is_secret_key(
                name
            ):
                out[name] = v  # the common case, without a call per value
            else:
                out[name] = _jsonable(v, pseudonym, name)
        return out
    if isinstance(value, list | tuple):
        return [_jsonable(v, pseudonym, key) for v in value]
    if isinstance(value, set | frozenset):
        return sorted((_jsonable(v, pseudonym, key) for v in value), key=str)
    if isinstance(value, bytes):
        return value.hex()
    return redact(str(value))


def _recovery(reason: str, **details: Any) -> _Entry:
    return _Entry(RECOVERED, "sweeper", None, None, {"reason": reason, **details})


def _format_time(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("the audit log needs timezone-aware datetimes")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _segment_name(number: int) -> str:
    return f"audit-{number:06d}.jsonl"


def _segment_number(name: Any) -> int | None:
    match = _SEGMENT_NAME.fullmatch(name) if isinstance(name, str) else None
    return int(match.group(1)) if match else None


# -- keys --------------------------------------------------------------------------------------


def _derive(key: bytes, purpose: bytes) -> bytes:
    return hmac.new(key, purpose, hashlib.sha256).digest()


def _key_id(key: bytes) -> str:
    return hmac.new(key, b"key id", hashlib.sha256).hexdigest()[:16]


def _create_key_file(path: Path) -> bytes:
    """Create a random key in path (mode 0600) unless another process just did; return it."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        _write_all(fd, secrets.token_bytes(32).hex().encode("ascii") + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(temporary, path)  # atomic, and fails if the key already exists
    except FileExistsError:
        pass
    finally:
        temporary.unlink()
    _fsync_dir(path.parent)
    return bytes.fromhex(path.read_text(encoding="ascii").strip())


# -- files -------------------------------------------------------------------------------------


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _lines(path: Path, size: int) -> Iterator[tuple[int, bytes]]:
    """Yield (line number, line) for the first size bytes of path; the last line may lack
    its newline."""
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        return
    with handle:
        left = size
        for line_no, raw in enumerate(handle, 1):
            if left <= 0:
                return
            if len(raw) > left:
                raw = raw[:left]
            left -= len(raw)
            yield line_no, raw


def _first_line(path: Path) -> bytes | None:
    with path.open("rb") as handle:
        line = handle.readline()
    return line.rstrip(b"\n") if line.endswith(b"\n") else None


def _tail_offsets(path: Path) -> tuple[int, int, bytes]:
    """Return (end of the last complete line, file size, bytes after it)."""
    with path.open("rb") as handle:
        size = handle.seek(0, os.SEEK_END)
        position, fragment = size, b""
        while position > 0:
            step = min(65536, position)
            position -= step
            handle.seek(position)
            chunk = handle.read(step) + fragment
            newline = chunk.rfind(b"\n")
            if newline >= 0:
                return position + newline + 1, size, chunk[newline + 1 :]
            fragment = chunk
        return 0, size, fragment


def _last_line(path: Path) -> bytes | None:
    """Return the last complete line of path, without its newline, or None."""
    end, _, _ = _tail_offsets(path)
    if end == 0:
        return None
    with path.open("rb") as handle:
        position, collected = end - 1, b""
        while position > 0:
            step = min(65536, position)
            position -= step
            handle.seek(position)
            collected = handle.read(step) + collected
            newline = collected.rfind(b"\n", 0, len(collected))
            if newline >= 0:
                return collected[newline + 1 :]
        return collected


def default_actor() -> str:
    """Return who runs this process: the sudo user if any, else the login name."""
    return os.environ.get("SUDO_USER") or getpass.getuser()
