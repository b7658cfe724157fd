"""The audit log's schema under Alembic, on SQLite and on a real PostgreSQL server: a new database is created at
the newest revision and matches the ORM; one made before migrations existed is upgraded in place, rows kept; one
written by a newer carelens is refused with a clear message."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from carelens.cli import app
from carelens.errors import ConfigError
from carelens.serve.storage import (
    FIRST_REVISION,
    AuditLog,
    Feedback,
    GroupWriter,
    PredictionRecord,
    alembic_config,
    head_revision,
    metadata,
    migrate,
)


def test_new_database_is_at_head_and_matches_the_models(database_url: str) -> None:
    log = AuditLog(database_url)
    assert log.revision == head_revision() != FIRST_REVISION
    with log.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), metadata) == []
    pid = log.record(kind="predict", model_name="m", model_version="1", assessment={"top": [1.5]}, latency_ms=2.0)
    assert log.add_feedback(pid, "melanoma", "biopsy", None) is not None
    assert log.get(pid).assessment == {"top": [1.5]}  # type: ignore[union-attr]
    assert migrate(log.engine) == (head_revision(), head_revision())  # a second start changes nothing


def test_database_from_before_migrations_is_upgraded_in_place(database_url: str) -> None:
    engine = create_engine(database_url)
    with engine.begin() as conn:  # the schema carelens 0.1 made with create_all: revision 0001, no version table
        command.upgrade(alembic_config(conn), FIRST_REVISION)
        conn.execute(text("DROP TABLE alembic_version"))
    created = dt.datetime(2026, 1, 2, tzinfo=dt.UTC)
    with Session(engine) as s, s.begin():
        s.add(PredictionRecord(id="p1", created=created, kind="predict", model_name="skin", model_version="3",
                               assessment={"triage": {"level": "self_care"}}, latency_ms=4.0))
        s.flush()
        s.add(Feedback(prediction_id="p1", created=created, diagnosis="nv", note=""))
    assert "ix_predictions_created" not in {i["name"] for i in inspect(engine).get_indexes("predictions")}
    assert migrate(engine) == (FIRST_REVISION, head_revision())
    assert "ix_predictions_created" in {i["name"] for i in inspect(engine).get_indexes("predictions")}
    log = AuditLog(database_url)
    rec = log.get("p1")
    assert rec is not None and rec.assessment == {"triage": {"level": "self_care"}} and log.ids() == {"p1"}
    assert log.prune(30, now=created + dt.timedelta(days=31)) == 1  # feedback first, then the prediction


def test_database_from_a_newer_carelens_is_refused(database_url: str) -> None:
    engine = create_engine(database_url)
    AuditLog(database_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(ConfigError, match="revision '9999'.*newer carelens"):
        AuditLog(database_url)


def test_cli_upgrades_in_place_and_hides_the_password(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    with create_engine(url).begin() as conn:
        command.upgrade(alembic_config(conn), FIRST_REVISION)
        conn.execute(text("DROP TABLE alembic_version"))
    out = CliRunner().invoke(app, ["audit-log", "upgrade", "--url", url])
    assert out.exit_code == 0 and f"schema revision {FIRST_REVISION} -> {head_revision()}" in out.output, out.output
    again = CliRunner().invoke(app, ["audit-log", "upgrade", "--url", url])
    assert "already up to date" in again.output
    bad = CliRunner().invoke(app, ["audit-log", "upgrade", "--url", "postgresql+psycopg://u:s3cret@127.0.0.1:1/x"])
    assert bad.exit_code != 0 and "s3cret" not in bad.output


def test_group_writer_commits_waiting_rows_together_and_a_bad_row_fails_alone(database_url: str) -> None:
    log = AuditLog(database_url)
    writer = GroupWriter(log)
    write = log.write
    sizes: list[int] = []

    def slow_write(rows: list[dict[str, object]]) -> None:  # a slow disk: the next requests arrive meanwhile
        if any(r["model_name"] == "bad" for r in rows):
            raise ValueError("this row cannot be written")
        sizes.append(len(rows))
        time.sleep(0.05)
        write(rows)

    log.write = slow_write  # type: ignore[method-assign]

    async def one(i: int) -> str:
        await asyncio.sleep(0.01 * i)  # requests finishing 10 ms apart, each write taking 50 ms
        return await writer.record(kind="predict", model_name="bad" if i == 7 else "m", model_version="1",
                                   assessment={"i": i}, latency_ms=1.0)

    async def many() -> list[str | BaseException]:
        return await asyncio.gather(*(one(i) for i in range(20)), return_exceptions=True)

    out = asyncio.run(many())
    assert isinstance(out[7], ValueError)  # only the bad row's request fails
    ids = [o for i, o in enumerate(out) if i != 7]
    assert all(isinstance(i, str) for i in ids) and len(set(ids)) == 19
    assert log.ids() == set(ids)  # every other row committed before its request returned
    assert {log.get(str(i)).assessment["i"] for i in ids} == set(range(20)) - {7}  # type: ignore[union-attr]
    assert sizes[0] == 1 and max(sizes) > 2 and sum(sizes) == 19  # the first alone at once, the waiting ones grouped
    assert writer.rows == 20 and writer.groups < 12


def test_group_writer_leaves_no_request_waiting_when_it_stops(tmp_path: Path) -> None:
    log = AuditLog(f"sqlite:///{tmp_path / 'audit.db'}")
    writer = GroupWriter(log)
    write = log.write
    log.write = lambda rows: (time.sleep(0.2), write(rows))[1]  # type: ignore[method-assign]

    async def go() -> str:
        first = asyncio.create_task(writer.record(kind="predict", model_name="m", model_version="1", assessment={},
                                                  latency_ms=1.0))
        await asyncio.sleep(0.05)  # its write is in progress
        assert writer.task is not None
        writer.task.cancel()  # a shutdown, say
        with pytest.raises(RuntimeError, match="writer stopped"):
            await first
        return await writer.record(kind="predict", model_name="m", model_version="1", assessment={}, latency_ms=1.0)

    assert asyncio.run(go()) in log.ids()  # the next request gets a new writer
