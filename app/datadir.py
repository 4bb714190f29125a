"""Whether this process may write where its SQLite database lives, said in one line."""

from __future__ import annotations

import os
from pathlib import Path


def unwritable(database: Path) -> str | None:
    """What stops this process from writing the SQLite file `database`, or None.

    SQLite's own error names no path ("unable to open database file"), and it
    comes as a traceback: a container whose data directory is a bind-mounted
    host folder owned by root meets it at its first start. It also writes
    beside the file (its journal and WAL), so the directory must be writable,
    not only the file; a directory still to be made needs a writable parent.
    """
    uid = os.geteuid()
    if database.exists():
        if not os.access(database, os.R_OK | os.W_OK):
            return (
                f"the database file {database} is not writable by uid {uid}: "
                f"give it to that user (chown {uid} {database})"
            )
        directory = database.parent
    else:
        directory = database.parent
        while not directory.exists() and directory != directory.parent:
            directory = directory.parent
    if not os.access(directory, os.W_OK | os.X_OK):
        return (
            f"the data directory {directory} is not writable by uid {uid}: give it to that "
            f"user (chown {uid} {directory}; for a bind mount, chown {uid} the host folder)"
        )
    return None
