"""Store, hash and report a plan's item rows in a second process.

A dry run has two halves of similar cost: reading and classifying items, and writing them
(the state store, the JSON and CSV reports, the content hash). ``ItemWriter`` runs the second
half in a forked child, fed through a pipe in batches, so both cores work; the pipe's buffer
bounds memory. The child opens its own database connection (never one inherited through the
fork) and reports the hash of everything it wrote, or the error that stopped it.
"""

from __future__ import annotations

import hashlib
import multiprocessing
from collections.abc import Mapping, Sequence
from datetime import datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from sweeper.errors import SweeperError
from sweeper.report import ReportWriter
from sweeper.store import Store

Row = tuple[Any, ...]


def canonical(row: Row) -> bytes:
    """The bytes a row adds to a content hash: its repr (rows hold str, int and None only)."""
    return repr(row).encode()


class ItemWriter:
    """Writes item rows of one plan from a child process; ``finish`` returns their hash."""

    def __init__(
        self,
        state_url: str,
        plan_id: str,
        reports_dir: Path | None,
        clock: datetime,
        labels: Mapping[int, tuple[str, str, str]],
    ) -> None:
        context = multiprocessing.get_context("fork")
        self._conn, child = context.Pipe()
        self._process = context.Process(
            target=_child,
            args=(child, state_url, plan_id, reports_dir, clock, dict(labels)),
            name=f"sweeper-writer-{plan_id}",
            daemon=True,
        )
        self._process.start()
        child.close()

    def add(self, rows: Sequence[Row]) -> None:
        """Queue rows for writing; blocks while the child is a full pipe behind."""
        try:
            self._conn.send(list(rows))
        except (BrokenPipeError, EOFError, OSError) as err:
            raise SweeperError(f"the plan writer stopped: {self._reason()}") from err

    def finish(self) -> str:
        """Wait until every row is written; return the sha256 of all rows, in order."""
        try:
            self._conn.send(None)
            status, value = self._conn.recv()
        except (BrokenPipeError, EOFError, OSError) as err:
            raise SweeperError(f"the plan writer stopped: {self._reason()}") from err
        finally:
            self._process.join(timeout=60)
        if status != "ok":
            raise SweeperError(f"writing the plan failed: {value}")
        return str(value)

    def abort(self) -> None:
        """Stop the child; what it wrote stays in a plan marked 'building'."""
        if self._process.is_alive():
            self._process.terminate()
        self._process.join(timeout=10)
        self._conn.close()

    def _reason(self) -> str:
        self._process.join(timeout=5)
        return f"exit code {self._process.exitcode}"


def _child(
    conn: Connection,
    state_url: str,
    plan_id: str,
    reports_dir: Path | None,
    clock: datetime,
    labels: dict[int, tuple[str, str, str]],
) -> None:
    reports: ReportWriter | None = None
    try:
        store = Store.open(state_url)
        hasher = hashlib.sha256()
        if reports_dir is not None:
            reports = ReportWriter(reports_dir, plan_id, clock)
            reports.begin(labels)
        while (rows := conn.recv()) is not None:
            for row in rows:
                hasher.update(canonical(row))
            with store.engine.begin() as db:
                store.insert_items(db, plan_id, rows)
            if reports is not None:
                reports.add(rows)
        if reports is not None:
            reports.close()
        store.close()
        conn.send(("ok", hasher.hexdigest()))
    except BaseException as err:  # noqa: BLE001  (the parent raises it as a SweeperError)
        if reports is not None:
            reports.abort()
        conn.send(("error", f"{type(err).__name__}: {err}"))
    finally:
        conn.close()
