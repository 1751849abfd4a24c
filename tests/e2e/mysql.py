"""The walkthrough's MySQL (``mysql.development``, ``backend_db``), driven through
``kubectl exec``: the table the backups carry, and a lock that holds a backup mid-run.

The table's text is what a dump must carry through unchanged (quotes, backslashes, newlines,
tabs, non-ASCII); restores are compared with :data:`SNAPSHOT` row by row.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

from pytest_kind import KindCluster

from tests.e2e.cluster import fail, kubectl, wait_until
from tests.e2e.walkthrough import NAMESPACE

__all__ = ["ROWS", "SNAPSHOT", "MySQL", "table_sql"]

DATABASE = "backend_db"
NOTES = ["plain", "O'Brien's \"quote\"", "back\\slash", "line one\nline two", "tab\there",
         "naïve ☃ 日本語", ""]  # fmt: skip
ROWS = 500
SNAPSHOT = "SELECT id, item, note, amount FROM orders ORDER BY id;"
#: The server's own client, as root (the stand-in's MYSQL_ROOT_PASSWORD is the Secret's).
_CLIENT = f'mysql -uroot -p"$MYSQL_ROOT_PASSWORD" --batch --skip-column-names {DATABASE}'
_LOCKS = (
    "SELECT COUNT(*) FROM performance_schema.metadata_locks "
    f"WHERE OBJECT_SCHEMA = '{DATABASE}' AND OBJECT_NAME = 'orders' AND LOCK_STATUS = '{{}}';"
)


def _literal(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "''") + "'"


def table_sql() -> str:
    """The table ``orders`` with :data:`ROWS` rows, made afresh."""
    values = ",\n".join(
        f"({i}, 'item-{i}', {_literal(NOTES[i % len(NOTES)])}, {i * 1.25:.2f})"
        for i in range(1, ROWS + 1)
    )
    return (
        "DROP TABLE IF EXISTS orders;\n"
        "CREATE TABLE orders (id INT PRIMARY KEY, item VARCHAR(64) NOT NULL, "
        "note TEXT NOT NULL, amount DECIMAL(10, 2) NOT NULL) DEFAULT CHARSET = utf8mb4;\n"
        f"INSERT INTO orders VALUES\n{values};\n"
    )


@dataclass(frozen=True)
class MySQL:
    cluster: KindCluster

    def sql(self, statements: str) -> str:
        """Run SQL in ``backend_db``; tab-separated rows, no header."""
        return kubectl(
            self.cluster, "exec", "-i", "-n", NAMESPACE, "deployment/mysql", "--",
            "sh", "-c", _CLIENT, input=statements,
        )  # fmt: skip

    def locks(self, status: str) -> int:
        """How many metadata locks on ``orders`` are GRANTED or PENDING."""
        return int(self.sql(_LOCKS.format(status)).strip())

    @contextlib.contextmanager
    def table_locked(self) -> Iterator[None]:
        """``LOCK TABLES orders WRITE`` in a session held open until exit.

        A backup's mysqldump takes ``LOCK TABLES orders READ`` first (``--lock-tables``, part
        of its defaults), so it waits, its Workflow running, until the lock is released here:
        the run is mid-stream for as long as the test needs. The client reads its statements
        from a pipe as they come, so the lock is held from the first line to the last.
        """
        session = subprocess.Popen(
            [
                str(self.cluster.kubectl_path), "exec", "-i", "-n", NAMESPACE,
                "deployment/mysql", "--", "sh", "-c", _CLIENT,
            ],
            env={**os.environ, "KUBECONFIG": str(self.cluster.kubeconfig_path)},
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        assert session.stdin is not None
        try:
            session.stdin.write("LOCK TABLES orders WRITE;\n")
            session.stdin.flush()
            wait_until(lambda: self.locks("GRANTED") > 0, "the write lock on orders", timeout=120)
            yield
            _, stderr = session.communicate("UNLOCK TABLES;\n", timeout=60)
            if session.returncode != 0:
                fail(f"the session holding the lock exited {session.returncode}:\n{stderr}")
        finally:
            if session.poll() is None:
                session.kill()
                session.communicate(timeout=30)
