"""The PostgreSQL store (asyncpg; the ``postgres`` extra). One module per job:

* ``schema`` -- the tables, their versions and the migration run at start-up under an
  advisory lock, so processes starting together migrate once;
* ``writer`` -- the bounded queue of publications waiting to be written, and the task that
  writes whatever gathered while the previous batch was in flight as one transaction;
* ``store`` -- :class:`PostgresStore`: numbering, writing, reading and pruning with SQL.
"""

from __future__ import annotations

from .store import PostgresStore

__all__ = ["PostgresStore"]
