"""SQLite storage: migrations, WAL, transitions, pruning, concurrent readers."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from monitord.domain.state import State, Transition
from monitord.storage import SCHEMA_VERSION, Storage, StorageError


async def test_open_migrates_and_uses_wal(tmp_path: Path) -> None:
    store = await Storage.open(tmp_path / "sub" / "m.db")
    try:
        assert await store.schema_version() == SCHEMA_VERSION
        assert await store.journal_mode() == "wal"
    finally:
        await store.close()
    # Re-opening is a no-op migration.
    store = await Storage.open(tmp_path / "sub" / "m.db")
    assert await store.schema_version() == SCHEMA_VERSION
    await store.close()


async def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(StorageError, match="newer than this monitord"):
        await Storage.open(path)


async def test_transitions_and_current_state(tmp_path: Path) -> None:
    store = await Storage.open(tmp_path / "m.db")
    try:
        await store.record_transitions([
            Transition("a", State.UNKNOWN, State.UP, 10.0, "ok"),
            Transition("b", State.UNKNOWN, State.DOWN, 11.0, "3 failures"),
        ])
        await store.record_transitions([Transition("a", State.UP, State.DOWN, 20.0, "x")])
        states = await store.load_states()
        assert {k: (v.state, v.since) for k, v in states.items()} == {
            "a": (State.DOWN, 20.0), "b": (State.DOWN, 11.0)}
        rows = await store.transitions(device_id="a")
        assert [(r.old, r.new, r.ts) for r in rows] == [
            (State.UP, State.DOWN, 20.0), (State.UNKNOWN, State.UP, 10.0)]
        # A reader in another connection (as `monitord status` is) sees committed data.
        reader = await Storage.open(tmp_path / "m.db", readonly=True)
        try:
            assert set(await reader.load_states()) == {"a", "b"}
        finally:
            await reader.close()
    finally:
        await store.close()


async def test_prune_keeps_retention_window(tmp_path: Path) -> None:
    store = await Storage.open(tmp_path / "m.db")
    now = 1_800_000_000.0
    day = 86400.0
    try:
        await store.record_transitions([
            Transition("a", State.UNKNOWN, State.UP, now - 100 * day, "old"),
            Transition("a", State.UP, State.DOWN, now - 89 * day, "kept"),
        ])
        await store.record_event("daemon_started", ts=now - 91 * day)
        await store.record_event("daemon_started", ts=now - 1 * day)
        assert await store.prune(90, now=now) == 2
        rows = await store.transitions()
        assert [r.reason for r in rows] == ["kept"]
        assert len(await store.events()) == 1
        # Current state is never pruned.
        assert (await store.load_states())["a"].state is State.DOWN
    finally:
        await store.close()


async def test_readonly_open_of_missing_db(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="no database"):
        await Storage.open(tmp_path / "none.db", readonly=True)
