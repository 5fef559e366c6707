"""One rule for ending a failed SQLite transaction, shared by every module that writes.

SQLite may already have rolled a transaction back by itself (disk full, I/O error); a
plain ``ROLLBACK`` then fails with "no transaction is active" and that second error hides
the first — the one that says the disk is full.  :func:`rollback` rolls back only what is
still open and never raises, so the original error is the one that propagates.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import AsyncIterator

import aiosqlite


async def rollback(db: aiosqlite.Connection) -> None:
    """Roll back if a transaction is still open; never raise (the caller re-raises)."""
    if db.in_transaction:
        with contextlib.suppress(sqlite3.Error):
            await db.execute("ROLLBACK")


@contextlib.asynccontextmanager
async def transaction(db: aiosqlite.Connection) -> AsyncIterator[aiosqlite.Connection]:
    """``BEGIN IMMEDIATE`` … ``COMMIT``; on any error :func:`rollback`, then re-raise."""
    await db.execute("BEGIN IMMEDIATE")
    try:
        yield db
        await db.execute("COMMIT")
    except BaseException:
        await rollback(db)
        raise
