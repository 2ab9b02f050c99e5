"""`sweeper audit verify`, `show`, `export`, `find-subject` and `prune` as a user runs them."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_run import Run

from sweeper import settings as settings_module
from sweeper.audit import AuditLog
from sweeper.settings import Settings
from sweeper.store import Store

KEY = "0123456789abcdef0123456789abcdef"
SUBJECT = "S-4711-Jansen"

# Until sweeper.cli registers the group itself, run it through a one-line shim that does.
_SHIM = (
    "import sys; from sweeper.cli import cli, main; from sweeper.cli_audit import audit; "
    "cli.add_command(audit); sys.argv[0] = 'sweeper'; main()"
)


def _registered() -> bool:
    from sweeper.cli import cli

    return "audit" in cli.commands


@pytest.fixture
def audit_cli(sweeper: Run, tmp_path: Path) -> Run:
    """Return a function that runs ``sweeper audit ARGS`` in the test's state dir."""
    if _registered():
        return lambda *args, **kwargs: sweeper("audit", *args, **kwargs)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("SWEEPER_") and k != "CREDENTIALS_DIRECTORY"
    }
    env["SWEEPER_STATE_DIR"] = str(tmp_path / "state")
    env["COLUMNS"] = "200"

    def run(
        *args: str, extra_env: dict[str, str] | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", _SHIM, "audit", *args],
            capture_output=True,
            text=True,
            env={**env, **(extra_env or {})},
            cwd=tmp_path,
            timeout=timeout,
            check=False,
        )

    return run


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The records are written in-process with the settings the CLI will read."""
    for name in list(os.environ):
        if name.upper().startswith("SWEEPER_") or name in (
            "CREDENTIALS_DIRECTORY",
            "STATE_DIRECTORY",
        ):
            monkeypatch.delenv(name)
    monkeypatch.setattr(settings_module, "DEFAULT_CONFIG", tmp_path / "no-such-config.yaml")


@pytest.fixture
def credentials(tmp_path: Path) -> Path:
    """A credentials directory holding the audit key."""
    folder = tmp_path / "credentials"
    folder.mkdir()
    (folder / "audit-key").write_text(KEY + "\n")
    return folder


@pytest.fixture
def log(tmp_path: Path, credentials: Path) -> Iterator[AuditLog]:
    """A keyed audit log in the state dir the CLI uses, with a plan approved and acted on."""
    settings = Settings(state_dir=tmp_path / "state", credentials_dir=credentials)
    store = Store.open(settings.state_database_url)
    audit_log = AuditLog.open(settings, store)
    audit_log.append("plan_created", "fg", plan_id="plan-a1")
    audit_log.append("plan_approved", "dpo", plan_id="plan-a1", note="checked")
    audit_log.append(
        "item_done",
        "daemon",
        plan_id="plan-a1",
        subject=SUBJECT,
        activity="pupil-administration",
        rule="P2Y from left_school, then delete",
        action="delete",
        system="sis",
        location="sis:students",
        reason='=HYPERLINK("http://evil")',
    )
    audit_log.append("item_skipped", "daemon", plan_id="plan-b2", subject="S-1", reason="held")
    yield audit_log
    store.close()


def add_segments(tmp_path: Path, credentials: Path) -> list[Path]:
    """Append records through a log with small segments until there are several; return them."""
    settings = Settings(
        state_dir=tmp_path / "state", credentials_dir=credentials, audit_segment_bytes=1024
    )
    store = Store.open(settings.state_database_url)
    small = AuditLog.open(settings, store)
    for index in range(10):
        small.append("item_done", "daemon", n=index)
    store.close()
    return sorted((tmp_path / "state" / "audit").glob("audit-*.jsonl"))


def flat(text: str) -> str:
    """Return text with line wrapping undone."""
    return " ".join(text.split())


def keyed(credentials: Path) -> dict[str, str]:
    return {"CREDENTIALS_DIRECTORY": str(credentials)}


def segment(tmp_path: Path) -> Path:
    return tmp_path / "state" / "audit" / "audit-000001.jsonl"


def test_verify_whole_log_exits_0(audit_cli: Run, log: AuditLog, credentials: Path) -> None:
    """`audit verify` on an untouched log says it is whole and exits 0."""
    result = audit_cli("verify", extra_env=keyed(credentials))
    assert result.returncode == 0, result.stderr
    assert "the audit log is whole: 5 record(s)" in result.stdout


def test_verify_empty_state_exits_0(audit_cli: Run) -> None:
    """`audit verify` in a fresh state directory finds an empty, whole log."""
    result = audit_cli("verify")
    assert result.returncode == 0, result.stderr
    assert "the log is empty" in result.stdout


def test_verify_names_an_edited_record(
    audit_cli: Run, log: AuditLog, credentials: Path, tmp_path: Path
) -> None:
    """`audit verify` exits 1 naming the record whose content was changed."""
    path = segment(tmp_path)
    path.write_bytes(path.read_bytes().replace(b'"checked"', b'"checkex"'))
    result = audit_cli("verify", extra_env=keyed(credentials))
    assert result.returncode == 1
    assert "record 3 in audit-000001.jsonl line 3: edited" in result.stderr


def test_verify_names_a_deleted_record(
    audit_cli: Run, log: AuditLog, credentials: Path, tmp_path: Path
) -> None:
    """`audit verify` exits 1 naming the record removed from the middle."""
    path = segment(tmp_path)
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:2] + lines[3:]))
    result = audit_cli("verify", extra_env=keyed(credentials))
    assert result.returncode == 1
    assert "record 3 in audit-000001.jsonl line 3: deleted" in result.stderr


def test_verify_names_swapped_records(
    audit_cli: Run, log: AuditLog, credentials: Path, tmp_path: Path
) -> None:
    """`audit verify` exits 1 naming records swapped as reordered."""
    path = segment(tmp_path)
    lines = path.read_bytes().splitlines(keepends=True)
    lines[1], lines[2] = lines[2], lines[1]
    path.write_bytes(b"".join(lines))
    result = audit_cli("verify", extra_env=keyed(credentials))
    assert result.returncode == 1
    assert "record 3 in audit-000001.jsonl line 2: reordered" in result.stderr


def test_verify_names_a_cut_tail(
    audit_cli: Run, log: AuditLog, credentials: Path, tmp_path: Path
) -> None:
    """`audit verify` exits 1 naming the first record cut off the end."""
    path = segment(tmp_path)
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:-1]))
    result = audit_cli("verify", extra_env=keyed(credentials))
    assert result.returncode == 1
    assert "record 5 in audit-000001.jsonl line 5: truncated" in result.stderr


def test_verify_json_names_the_first_bad_record(
    audit_cli: Run, log: AuditLog, credentials: Path, tmp_path: Path
) -> None:
    """`audit verify --format json` gives the verdict as JSON."""
    path = segment(tmp_path)
    path.write_bytes(path.read_bytes().replace(b'"checked"', b'"checkex"'))
    result = audit_cli("verify", "--format", "json", extra_env=keyed(credentials))
    assert result.returncode == 1
    verdict = json.loads(result.stdout)
    assert (verdict["ok"], verdict["first_bad"], verdict["reason"]) == (False, 3, "edited")


def test_verify_keyed_log_without_the_key_exits_2(audit_cli: Run, log: AuditLog) -> None:
    """`audit verify` without the key a log was written with is a configuration error."""
    result = audit_cli("verify")
    assert result.returncode == 2
    assert "the audit key is not configured" in flat(result.stderr)
    assert KEY not in result.stderr


def test_show_by_subject_prints_the_pseudonym_only(
    audit_cli: Run, log: AuditLog, credentials: Path
) -> None:
    """`audit show --subject ID` finds the subject's records, which show only its pseudonym."""
    result = audit_cli("show", "--subject", SUBJECT, extra_env=keyed(credentials))
    assert result.returncode == 0, result.stderr
    [line] = result.stdout.splitlines()
    assert "item_done" in line and log.subject_ref(SUBJECT) in line and SUBJECT not in line


def test_show_filters_by_plan_and_event(audit_cli: Run, log: AuditLog, credentials: Path) -> None:
    """`audit show --plan PREFIX --event PREFIX*` keeps the matching records only."""
    result = audit_cli(
        "show", "--plan", "plan-a", "--event", "item_*", extra_env=keyed(credentials)
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1 and "item_done" in lines[0]


def test_show_filters_by_time(audit_cli: Run, log: AuditLog, credentials: Path) -> None:
    """`audit show --until DATE` before the records were written shows none."""
    result = audit_cli("show", "--until", "2000-01-01", extra_env=keyed(credentials))
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    result = audit_cli("show", "--since", "2000-01-01", extra_env=keyed(credentials))
    assert len(result.stdout.splitlines()) == 5


def test_show_json_prints_an_array_of_records_as_stored(
    audit_cli: Run, log: AuditLog, credentials: Path
) -> None:
    """`audit show --format json` prints the matching records, as stored, as a JSON array."""
    result = audit_cli("show", "--format", "json", "--event", "plan_*")
    assert result.returncode == 0, result.stderr
    records = json.loads(result.stdout)
    assert [(r["event"], r["actor"]) for r in records] == [
        ("plan_created", "fg"),
        ("plan_approved", "dpo"),
    ]
    assert records[1]["details"] == {"note": "checked"}


def test_show_json_with_no_match_is_an_empty_array(audit_cli: Run, log: AuditLog) -> None:
    """`audit show --format json` with nothing matching prints []."""
    result = audit_cli("show", "--format", "json", "--event", "no_such_event")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []


def test_export_jsonl_writes_one_record_per_line(audit_cli: Run, log: AuditLog) -> None:
    """`audit export --format jsonl` writes each record as stored on its own line."""
    result = audit_cli("export", "--format", "jsonl")
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["seq"] for r in records] == [1, 2, 3, 4, 5]


def test_export_csv_to_a_file(
    audit_cli: Run, log: AuditLog, credentials: Path, tmp_path: Path
) -> None:
    """`audit export --format csv -o FILE` writes a spreadsheet with the details in columns."""
    out = tmp_path / "audit.csv"
    result = audit_cli("export", "--format", "csv", "-o", str(out), extra_env=keyed(credentials))
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"))))
    assert len(rows) == 5
    done = next(r for r in rows if r["event"] == "item_done")
    assert (done["activity"], done["action"], done["plan_id"]) == (
        "pupil-administration",
        "delete",
        "plan-a1",
    )
    assert SUBJECT not in out.read_text(encoding="utf-8")


def test_export_csv_defuses_formulas(audit_cli: Run, log: AuditLog, credentials: Path) -> None:
    """A detail a spreadsheet would run as a formula is exported with a leading quote."""
    result = audit_cli("export", "--event", "item_done", extra_env=keyed(credentials))
    assert result.returncode == 0, result.stderr
    [row] = list(csv.DictReader(io.StringIO(result.stdout)))
    assert row["reason"] == '\'=HYPERLINK("http://evil")'


def test_find_subject_says_rule_action_and_approver(
    audit_cli: Run, log: AuditLog, credentials: Path
) -> None:
    """`audit find-subject ID` tells when the subject's data was acted on, how, and who
    approved it."""
    result = audit_cli("find-subject", SUBJECT, extra_env=keyed(credentials))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert f"pseudonym {log.subject_ref(SUBJECT)}" in out
    for expected in ("item_done", "plan-a1", "P2Y from left_school, then delete", "delete"):
        assert expected in out
    assert "approved by: dpo" in out


def test_find_subject_unknown_says_so(audit_cli: Run, log: AuditLog, credentials: Path) -> None:
    """`audit find-subject` for a subject never acted on says there are no records."""
    result = audit_cli("find-subject", "S-0000", extra_env=keyed(credentials))
    assert result.returncode == 0, result.stderr
    assert "no records about this subject" in result.stdout


def test_prune_without_execute_removes_nothing(
    audit_cli: Run, log: AuditLog, credentials: Path, tmp_path: Path
) -> None:
    """`audit prune` lists what it would remove and removes nothing."""
    before = add_segments(tmp_path, credentials)
    env = {**keyed(credentials), "SWEEPER_AUDIT_RETENTION": "P0D"}
    result = audit_cli("prune", extra_env=env)
    assert result.returncode == 0, result.stderr
    assert "would remove" in result.stdout and "--execute" in result.stdout
    assert sorted((tmp_path / "state" / "audit").glob("audit-*.jsonl")) == before


def test_prune_execute_removes_old_segments_and_still_verifies(
    audit_cli: Run, log: AuditLog, credentials: Path, tmp_path: Path
) -> None:
    """`audit prune --execute` removes segments past the retention; the log still verifies."""
    before = add_segments(tmp_path, credentials)
    assert len(before) > 1
    env = {**keyed(credentials), "SWEEPER_AUDIT_RETENTION": "P0D"}
    result = audit_cli("prune", "--execute", "--by", "dpo", extra_env=env)
    assert result.returncode == 0, result.stderr
    assert f"removed {before[0]}" in result.stdout
    assert not before[0].exists()
    verified = audit_cli("verify", extra_env=env)
    assert verified.returncode == 0, verified.stderr
    shown = audit_cli("show", "--event", "audit_pruned", "--format", "json", extra_env=env)
    assert [r["actor"] for r in json.loads(shown.stdout)] == ["dpo"]
