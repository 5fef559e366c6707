"""SQLite storage through aiosqlite: WAL mode, versioned migrations, transitions only —
and all of monitord's SQL.

Only *changes* are stored (state transitions and daemon events), never every sample:
samples live in Prometheus.  History older than ``retention_days`` (default 90, the
Computer Crime Act's minimum for traffic records) is pruned by the daemon.

Modules, one per concern:

* :mod:`~monitord.storage.db`: the file (permissions, read-only URIs, error reasons,
  ``monitord db check`` / ``db backup``);
* :mod:`~monitord.storage.migrations`: the schema (``PRAGMA user_version``);
* :mod:`~monitord.storage.store`: :class:`Storage`, the daemon's connection;
* :mod:`~monitord.storage.states`, :mod:`~monitord.storage.tickets`,
  :mod:`~monitord.storage.outbox`, :mod:`~monitord.storage.maintenance`: one table set
  each;
* :mod:`~monitord.storage.history` (availability's read-only loader),
  :mod:`~monitord.storage.events` (the wall's recent events);
* :mod:`~monitord.storage.tx`: ending a failed transaction.

Everything else in monitord reads and writes through these; nothing outside this package
imports sqlite3/aiosqlite or writes SQL (``tests/unit/test_layout.py``).
"""

from __future__ import annotations

from monitord.storage.db import DIR_MODE as DIR_MODE
from monitord.storage.db import FILE_MODE as FILE_MODE
from monitord.storage.db import DatabaseError as DatabaseError
from monitord.storage.db import backup_database as backup_database
from monitord.storage.db import check_database as check_database
from monitord.storage.db import default_data_dir as default_data_dir
from monitord.storage.db import error_reason as error_reason
from monitord.storage.db import error_text as error_text
from monitord.storage.db import is_storage_error as is_storage_error
from monitord.storage.db import readonly_uri as readonly_uri
from monitord.storage.errors import StorageError as StorageError
from monitord.storage.migrations import MIGRATIONS as MIGRATIONS
from monitord.storage.migrations import SCHEMA_VERSION as SCHEMA_VERSION
from monitord.storage.states import TransitionRow as TransitionRow
from monitord.storage.store import Storage as Storage
