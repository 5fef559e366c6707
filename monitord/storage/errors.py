"""The storage layer's own error (a database monitord cannot use as it is)."""

from __future__ import annotations


class StorageError(RuntimeError):
    """No database where one is expected, a schema newer than this monitord, a bad copy."""
