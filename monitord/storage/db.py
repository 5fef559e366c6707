"""The database file: where it lives, how it is opened and checked, how errors read.

Files: the data directory is created 0750 and the database (with its ``-wal``/``-shm``,
which SQLite creates with the database's own mode) 0640, whatever the umask; read-only
connections use a percent-escaped ``file:`` URI, so ``#``, ``?``, ``%`` and spaces in a path
are part of the file name.  :func:`check_database` and :func:`backup_database` back
``monitord db check`` and ``monitord db backup``.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import sqlite3
from pathlib import Path

from monitord.storage.errors import StorageError
from monitord.storage.migrations import MIGRATIONS, SCHEMA_VERSION

log = logging.getLogger("monitord.storage")

#: what a failed database operation raises (besides OSError): callers outside storage
#: catch this instead of importing sqlite3
DatabaseError = sqlite3.Error


DIR_MODE = 0o750
FILE_MODE = 0o640


def readonly_uri(path: Path) -> str:
    """A ``file:`` URI that opens ``path`` read-only.  ``Path.as_uri`` percent-escapes the
    path: a ``#``, ``?`` or ``%`` in a directory name cannot cut the URI short and open
    another (empty, writable) file."""
    return path.absolute().as_uri() + "?mode=ro"


def _create_files(path: Path) -> None:
    """Create the data directory 0750 and the database 0640 (SQLite gives ``-wal`` and
    ``-shm`` the database's mode)."""
    if not path.parent.exists():
        path.parent.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, FILE_MODE))


def _restrict_files(path: Path) -> None:
    """Take group-write and world bits off database files created before (or by hand)."""
    for name in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        try:
            mode = name.stat().st_mode & 0o7777
            if mode & 0o027:
                os.chmod(name, mode & ~0o027)
                log.info("database file %s was mode %o, now %o", name, mode, mode & ~0o027)
        except FileNotFoundError:
            continue
        except OSError as exc:  # not ours to change: say so, go on
            log.warning("cannot restrict the mode of %s: %s", name, exc)


#: SQLite primary result codes → the ``reason`` label of failed writes
_SQLITE_REASONS = {13: "disk_full", 8: "read_only", 5: "locked", 6: "locked", 10: "io_error",
                   11: "corrupt", 26: "corrupt", 14: "cannot_open"}


def is_storage_error(exc: BaseException) -> bool:
    return isinstance(exc, sqlite3.Error | OSError)


def error_reason(exc: BaseException) -> str:
    """A short, stable reason for a failed database operation (a metric label)."""
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        return _SQLITE_REASONS.get(code & 0xFF, "other") if isinstance(code, int) else "other"
    if isinstance(exc, OSError):
        return {errno.ENOSPC: "disk_full", errno.EDQUOT: "disk_full",
                errno.EROFS: "read_only"}.get(exc.errno or 0, "io_error")
    return "other"


def error_text(exc: BaseException) -> str:
    """The error without file names (it may be shown on /healthz)."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc)[:200] or type(exc).__name__


def default_data_dir() -> Path:
    """``$MONITORD_DATA_DIR``, else ``$XDG_DATA_HOME/monitord``, else ~/.local/share."""
    if env := os.environ.get("MONITORD_DATA_DIR"):
        return Path(env)
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(Path.home(), ".local", "share")
    return Path(base) / "monitord"


# -- maintenance: `monitord db check` / `monitord db backup` ------------------------------


def _columns(conn: sqlite3.Connection) -> dict[str, list[str]]:
    tables = [r[0] for r in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
    return {t: [c[1] for c in conn.execute(f'PRAGMA table_info("{t}")')] for t in tables}


def _connect_for_check(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(readonly_uri(path), uri=True, timeout=10.0)
    try:
        conn.execute("PRAGMA schema_version").fetchone()
        return conn
    except sqlite3.Error as exc:
        conn.close()
        wal = Path(f"{path}-wal")
        if error_reason(exc) != "cannot_open" or (wal.exists() and wal.stat().st_size):
            raise
    # A read-only file system (a backup medium): no -shm can be created there, and with
    # no WAL content the file alone is the whole database.
    return sqlite3.connect(readonly_uri(path) + "&immutable=1", uri=True, timeout=10.0)


def check_database(path: Path) -> tuple[list[str], int]:
    """Problems found in the database at ``path`` (empty: sound) and its schema version.

    ``PRAGMA integrity_check`` and ``foreign_key_check``, then the schema: the tables and
    columns that the migrations up to the file's ``user_version`` create must be there."""
    if not path.is_file():
        return [f"no database at {path}"], 0
    try:
        conn = _connect_for_check(path)
    except sqlite3.Error as exc:
        return [str(exc)], 0
    problems: list[str] = []
    version = 0
    try:
        result = [str(r[0]) for r in conn.execute("PRAGMA integrity_check(20)")]
        if result != ["ok"]:
            problems += result
        violations = conn.execute("PRAGMA foreign_key_check").fetchall()
        if violations:
            problems.append(f"{len(violations)} rows refer to missing rows "
                            f"(first in table {violations[0][0]})")
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        if version > SCHEMA_VERSION:
            problems.append(f"schema {version} is newer than this monitord ({SCHEMA_VERSION})")
        elif version == 0:
            problems.append("not a monitord database (schema version 0, no monitord tables)")
        else:
            ref = sqlite3.connect(":memory:")
            try:
                for script in MIGRATIONS[:version]:
                    ref.executescript(script)
                expected = _columns(ref)
            finally:
                ref.close()
            found = _columns(conn)
            for table, cols in expected.items():
                if table not in found:
                    problems.append(f"table {table} is missing")
                elif missing := [c for c in cols if c not in found[table]]:
                    problems.append(f"table {table} lacks columns {', '.join(missing)}")
    except sqlite3.Error as exc:
        problems.append(str(exc))
    finally:
        conn.close()
    return problems, version


def backup_database(source: Path, target: Path) -> None:
    """An online, consistent copy of ``source`` into ``target`` (mode 0640) with SQLite's
    backup API: one read transaction, so the daemon keeps writing meanwhile (WAL).

    The copy is a single self-contained file (rollback-journal mode; the daemon switches
    it back to WAL when it opens it), checked before it replaces ``target``."""
    if not source.is_file():
        raise StorageError(f"no database at {source}")
    if target.exists() and target.resolve() == source.resolve():
        raise StorageError("the backup file must not be the database itself")
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        os.close(os.open(tmp, os.O_CREAT | os.O_TRUNC | os.O_WRONLY, FILE_MODE))
        src = sqlite3.connect(readonly_uri(source), uri=True, timeout=10.0)
        try:
            dst = sqlite3.connect(tmp)
            try:
                src.backup(dst)
                dst.execute("PRAGMA journal_mode = DELETE")
                result = dst.execute("PRAGMA integrity_check").fetchone()
                if result is None or result[0] != "ok":
                    raise StorageError(f"the copy failed its integrity check: {result}")
            finally:
                dst.close()
        finally:
            src.close()
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
