"""Plan, approve and execute a RoPA with bucket systems against moto's server, in-process."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bucket_store import CREDENTIAL, NOW
from pydantic import SecretStr

from sweeper import approve as approval
from sweeper import execute as execution
from sweeper.audit import AuditLog
from sweeper.plan import PlanOptions, build_plan
from sweeper.ropa import load_ropa
from sweeper.settings import Settings
from sweeper.store import Store

HEAD = """
controller: {name: School, contact: {name: Office}, dpo: {name: FG}}
timezone: Europe/Amsterdam
"""


def bucket_system(system_id: str, endpoint: str, **extra: str) -> str:
    connection = ", ".join(
        [
            f"endpoint_url: '{endpoint}'",
            "region: eu-central-1",
            "addressing_style: path",
            "credential: s3",
            *(f"{k}: {v}" for k, v in extra.items()),
        ]
    )
    return (
        f"  - {{id: {system_id}, name: {system_id}, kind: bucket, connection: {{{connection}}}}}\n"
    )


def activity(
    activity_id: str,
    system_id: str,
    bucket: str,
    prefix: str = "",
    action: str = "delete",
    extra: str = "",
) -> str:
    return textwrap.dedent(f"""\
      - id: {activity_id}
        name: {activity_id}
        purposes: [exams]
        legal_basis: [public_task]
        retention:
          {{period: P1Y, clock: modified, action: {action}, limits: {{max_fraction: 1}}{extra}}}
        locations:
          - {{system: {system_id}, bucket: {bucket}, prefix: '{prefix}'}}
    """)


@dataclass
class Cycle:
    path: Path
    settings: Settings
    store: Store

    @classmethod
    def make(cls, tmp_path: Path, systems: str, activities: str) -> Cycle:
        tmp_path.mkdir(parents=True, exist_ok=True)
        path = tmp_path / "ropa.yaml"
        path.write_text(HEAD + "systems:\n" + systems + "activities:\n" + activities)
        settings = Settings(state_dir=tmp_path / "state", credentials={"s3": SecretStr(CREDENTIAL)})
        return cls(path, settings, Store.open(settings.state_database_url))

    def plan(self) -> tuple[str, list[dict[str, Any]]]:
        result = build_plan(
            load_ropa(self.path),
            self.settings,
            self.store,
            PlanOptions(now=NOW, created_by="planner"),
        )
        return result.plan_id, list(self.store.items(result.plan_id))

    def approve(self, plan_id: str) -> None:
        approval.approve(
            self.store,
            self.store.plan(plan_id),
            self.settings,
            by="fg",
            note=None,
            only=(),
            now=NOW,
            current_digest=load_ropa(self.path).digest,
            audit=AuditLog.open(self.settings, self.store),
        )

    def execute(self, plan_id: str) -> execution.ExecutionResult:
        return execution.execute(
            load_ropa(self.path),
            self.settings,
            self.store,
            plan_id,
            execution.ExecuteOptions(now=NOW, actor="ops"),
        )

    def audit(self, event: str) -> list[dict[str, Any]]:
        return list(AuditLog.open(self.settings, self.store).records(event=event))
