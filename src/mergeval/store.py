"""The results store: one SQLite file, the single source of truth.

Everything mergeval computes lands here item by item, keyed by (model fingerprint, check hash, item id), so
a run can be killed at any moment and resumed, and nothing is ever computed twice. This is the only module
that writes SQL.

Tables
  meta      schema version and store-wide facts
  models    one row per model fingerprint (what a model *is*), with the references it was seen under
  checks    one row per check configuration (what was asked), keyed by the hash of its config
  runs      one row per (model, check) execution: provenance (library versions, dtype, batch size, timings)
  items     one row per (model, check, item): per-item metrics (JSON) and data (responses, targets)
  cache     small keyed values shared across runs (e.g. judge verdicts keyed by judge + prompt + answer)
  merges    how a merged model was made (mergekit config, method, parameters, seed, parents)

Writes are short transactions in WAL mode, so SIGKILL loses at most the batch being written and never
corrupts what is already stored.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mergeval.errors import StoreError

DEFAULT_STORE = Path("mergeval-results") / "mergeval.db"
SCHEMA_VERSION = 1

# Migrations: index i upgrades a store from version i to i+1. Version 0 is an empty file.
_MIGRATIONS: list[str] = [
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE models (
        fingerprint TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        reference TEXT NOT NULL,
        kind TEXT NOT NULL,
        metadata TEXT NOT NULL DEFAULT '{}',
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    );
    CREATE TABLE checks (
        hash TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        name TEXT NOT NULL,
        config TEXT NOT NULL,
        created_at REAL NOT NULL
    );
    CREATE INDEX checks_by_name ON checks (kind, name);
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        model_fp TEXT NOT NULL REFERENCES models (fingerprint),
        check_hash TEXT NOT NULL REFERENCES checks (hash),
        status TEXT NOT NULL,
        provenance TEXT NOT NULL DEFAULT '{}',
        n_items INTEGER NOT NULL DEFAULT 0,
        started_at REAL NOT NULL,
        finished_at REAL
    );
    CREATE INDEX runs_by_pair ON runs (model_fp, check_hash);
    CREATE TABLE items (
        model_fp TEXT NOT NULL,
        check_hash TEXT NOT NULL,
        item_id TEXT NOT NULL,
        run_id INTEGER NOT NULL REFERENCES runs (id),
        metrics TEXT NOT NULL,
        data TEXT NOT NULL DEFAULT '{}',
        created_at REAL NOT NULL,
        PRIMARY KEY (model_fp, check_hash, item_id)
    ) WITHOUT ROWID;
    CREATE TABLE cache (
        namespace TEXT NOT NULL,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        created_at REAL NOT NULL,
        PRIMARY KEY (namespace, key)
    ) WITHOUT ROWID;
    CREATE TABLE merges (
        model_fp TEXT PRIMARY KEY,
        method TEXT NOT NULL,
        config TEXT NOT NULL,
        parameters TEXT NOT NULL DEFAULT '{}',
        seed INTEGER,
        mergekit_version TEXT,
        parents TEXT NOT NULL DEFAULT '[]',
        output_path TEXT,
        created_at REAL NOT NULL
    );
    """,
]


@dataclass(frozen=True)
class ModelRow:
    fingerprint: str
    name: str
    reference: str
    kind: str
    metadata: dict[str, Any]


@dataclass(frozen=True)
class CheckRow:
    hash: str
    kind: str
    name: str
    config: dict[str, Any]


@dataclass(frozen=True)
class RunRow:
    id: int
    model_fp: str
    check_hash: str
    status: str
    provenance: dict[str, Any]
    n_items: int
    started_at: float
    finished_at: float | None


@dataclass
class ItemRow:
    """One evaluated item: `metrics` are numbers (what is aggregated), `data` is everything else."""

    item_id: str
    metrics: dict[str, float]
    data: dict[str, Any] = field(default_factory=dict)


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)


class Store:
    """A handle on one results database. Cheap to open; use as a context manager or call close()."""

    def __init__(self, path: str | Path = DEFAULT_STORE, *, create: bool = True):
        self.path = Path(path)
        if not self.path.exists():
            if not create:
                raise StoreError(
                    f"No results store at {self.path}. Run `mergeval eval` first, or pass --store PATH."
                )
            self.path.parent.mkdir(parents=True, exist_ok=True)
        elif self.path.is_dir():
            raise StoreError(f"{self.path} is a folder, not a results store file. Pass --store PATH/to/file.db.")
        try:
            self._db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
            self._db.execute("PRAGMA busy_timeout = 30000")
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            raise StoreError(
                f"{self.path} is not a readable mergeval store ({exc}). Move it aside and run again to start "
                "a fresh store, or pass --store to use another file; mergeval did not modify it."
            ) from exc
        if version > SCHEMA_VERSION:
            self._db.close()
            raise StoreError(
                f"{self.path} was written by a newer mergeval (schema {version} > {SCHEMA_VERSION}). "
                "Upgrade mergeval (pip install -U mergeval) to read it."
            )
        if version < SCHEMA_VERSION:
            self._migrate(version)
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute("PRAGMA synchronous = NORMAL")
        self._db.execute("PRAGMA foreign_keys = ON")

    # -- lifecycle -------------------------------------------------------------------------------------

    def _migrate(self, version: int) -> None:
        if version == 0:
            tables = self._db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
            if tables:
                self._db.close()
                raise StoreError(
                    f"{self.path} is an SQLite database but not a mergeval store. Pass --store with another "
                    "path; mergeval did not modify it."
                )
        for target in range(version, SCHEMA_VERSION):
            with self.transaction():
                for statement in _MIGRATIONS[target].split(";"):
                    if statement.strip():
                        self._db.execute(statement)
                self._db.execute(f"PRAGMA user_version = {target + 1}")
        with self.transaction():
            self._db.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
            )

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        else:
            self._db.execute("COMMIT")

    # -- models ----------------------------------------------------------------------------------------

    def upsert_model(
        self, fingerprint: str, *, name: str, reference: str, kind: str, metadata: Mapping[str, Any] | None = None
    ) -> None:
        now = time.time()
        with self.transaction() as db:
            db.execute(
                """INSERT INTO models (fingerprint, name, reference, kind, metadata, created_at, updated_at)
                   VALUES (?, ?, ?, ?, ?, ?, ?)
                   ON CONFLICT (fingerprint) DO UPDATE SET name = excluded.name, reference = excluded.reference,
                       kind = excluded.kind, metadata = excluded.metadata, updated_at = excluded.updated_at""",
                (fingerprint, name, reference, kind, _dumps(dict(metadata or {})), now, now),
            )

    def model(self, fingerprint: str) -> ModelRow | None:
        row = self._db.execute(
            "SELECT fingerprint, name, reference, kind, metadata FROM models WHERE fingerprint = ?", (fingerprint,)
        ).fetchone()
        return ModelRow(row[0], row[1], row[2], row[3], json.loads(row[4])) if row else None

    def models(self) -> list[ModelRow]:
        rows = self._db.execute(
            "SELECT fingerprint, name, reference, kind, metadata FROM models ORDER BY created_at"
        ).fetchall()
        return [ModelRow(r[0], r[1], r[2], r[3], json.loads(r[4])) for r in rows]

    def find_models(self, key: str) -> list[ModelRow]:
        """Models whose name, reference or fingerprint prefix equals `key`."""
        return [m for m in self.models() if key in (m.name, m.reference) or m.fingerprint.startswith(key)]

    # -- checks ----------------------------------------------------------------------------------------

    def upsert_check(self, check_hash: str, *, kind: str, name: str, config: Mapping[str, Any]) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT OR IGNORE INTO checks (hash, kind, name, config, created_at) VALUES (?, ?, ?, ?, ?)",
                (check_hash, kind, name, _dumps(dict(config)), time.time()),
            )

    def check(self, check_hash: str) -> CheckRow | None:
        row = self._db.execute("SELECT hash, kind, name, config FROM checks WHERE hash = ?", (check_hash,)).fetchone()
        return CheckRow(row[0], row[1], row[2], json.loads(row[3])) if row else None

    def checks(self, kind: str | None = None) -> list[CheckRow]:
        query = "SELECT hash, kind, name, config FROM checks"
        rows = self._db.execute(query + (" WHERE kind = ?" if kind else "") + " ORDER BY created_at",
                                (kind,) if kind else ()).fetchall()
        return [CheckRow(r[0], r[1], r[2], json.loads(r[3])) for r in rows]

    # -- runs ------------------------------------------------------------------------------------------

    def start_run(self, model_fp: str, check_hash: str, provenance: Mapping[str, Any]) -> int:
        with self.transaction() as db:
            cur = db.execute(
                "INSERT INTO runs (model_fp, check_hash, status, provenance, started_at) VALUES (?, ?, ?, ?, ?)",
                (model_fp, check_hash, "running", _dumps(dict(provenance)), time.time()),
            )
            return int(cur.lastrowid)

    def finish_run(self, run_id: int, status: str = "done", provenance: Mapping[str, Any] | None = None) -> None:
        with self.transaction() as db:
            n = db.execute("SELECT count(*) FROM items WHERE run_id = ?", (run_id,)).fetchone()[0]
            if provenance is not None:
                db.execute("UPDATE runs SET provenance = ? WHERE id = ?", (_dumps(dict(provenance)), run_id))
            db.execute(
                "UPDATE runs SET status = ?, finished_at = ?, n_items = ? WHERE id = ?",
                (status, time.time(), n, run_id),
            )

    def runs(self, model_fp: str | None = None, check_hash: str | None = None) -> list[RunRow]:
        clauses, args = [], []
        if model_fp:
            clauses.append("model_fp = ?")
            args.append(model_fp)
        if check_hash:
            clauses.append("check_hash = ?")
            args.append(check_hash)
        where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
        rows = self._db.execute(
            "SELECT id, model_fp, check_hash, status, provenance, n_items, started_at, finished_at FROM runs"
            + where + " ORDER BY id",
            args,
        ).fetchall()
        return [RunRow(r[0], r[1], r[2], r[3], json.loads(r[4]), r[5], r[6], r[7]) for r in rows]

    # -- items -----------------------------------------------------------------------------------------

    def add_items(self, model_fp: str, check_hash: str, run_id: int, items: Iterable[ItemRow]) -> int:
        """Store a batch of items in one transaction; items already stored are kept as they are."""
        now = time.time()
        rows = [
            (model_fp, check_hash, str(it.item_id), run_id, _dumps(it.metrics), _dumps(it.data), now) for it in items
        ]
        with self.transaction() as db:
            before = db.total_changes
            db.executemany(
                "INSERT OR IGNORE INTO items (model_fp, check_hash, item_id, run_id, metrics, data, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            return db.total_changes - before

    def item_ids(self, model_fp: str, check_hash: str) -> set[str]:
        rows = self._db.execute(
            "SELECT item_id FROM items WHERE model_fp = ? AND check_hash = ?", (model_fp, check_hash)
        ).fetchall()
        return {r[0] for r in rows}

    def items(self, model_fp: str, check_hash: str, *, with_data: bool = False) -> list[ItemRow]:
        cols = "item_id, metrics" + (", data" if with_data else "")
        rows = self._db.execute(
            f"SELECT {cols} FROM items WHERE model_fp = ? AND check_hash = ?", (model_fp, check_hash)
        ).fetchall()
        return [ItemRow(r[0], json.loads(r[1]), json.loads(r[2]) if with_data else {}) for r in rows]

    def count_items(self, model_fp: str, check_hash: str) -> int:
        return self._db.execute(
            "SELECT count(*) FROM items WHERE model_fp = ? AND check_hash = ?", (model_fp, check_hash)
        ).fetchone()[0]

    # -- cache -----------------------------------------------------------------------------------------

    def cache_get(self, namespace: str, key: str) -> Any | None:
        row = self._db.execute("SELECT value FROM cache WHERE namespace = ? AND key = ?", (namespace, key)).fetchone()
        return json.loads(row[0]) if row else None

    def cache_put(self, namespace: str, key: str, value: Any) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO cache (namespace, key, value, created_at) VALUES (?, ?, ?, ?)",
                (namespace, key, _dumps(value), time.time()),
            )

    def cache_count(self, namespace: str) -> int:
        return self._db.execute("SELECT count(*) FROM cache WHERE namespace = ?", (namespace,)).fetchone()[0]

    # -- merges ----------------------------------------------------------------------------------------

    def record_merge(
        self,
        model_fp: str,
        *,
        method: str,
        config: Mapping[str, Any],
        parameters: Mapping[str, Any],
        seed: int | None,
        mergekit_version: str | None,
        parents: list[str],
        output_path: str | None,
    ) -> None:
        with self.transaction() as db:
            db.execute(
                """INSERT OR REPLACE INTO merges
                   (model_fp, method, config, parameters, seed, mergekit_version, parents, output_path, created_at)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                (model_fp, method, _dumps(dict(config)), _dumps(dict(parameters)), seed, mergekit_version,
                 _dumps(parents), output_path, time.time()),
            )

    def merge(self, model_fp: str) -> dict[str, Any] | None:
        row = self._db.execute(
            "SELECT method, config, parameters, seed, mergekit_version, parents, output_path, created_at"
            " FROM merges WHERE model_fp = ?",
            (model_fp,),
        ).fetchone()
        if not row:
            return None
        return {
            "method": row[0], "config": json.loads(row[1]), "parameters": json.loads(row[2]), "seed": row[3],
            "mergekit_version": row[4], "parents": json.loads(row[5]), "output_path": row[6], "created_at": row[7],
        }
