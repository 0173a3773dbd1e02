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

import functools
import json
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self
from urllib.request import pathname2url

from mergeval.errors import StoreError

RESULTS_DIR = Path("mergeval-results")  # where results, reports, merges and sweeps go unless told otherwise
DEFAULT_STORE = RESULTS_DIR / "mergeval.db"  # the ONE default store path (CLI, library, plans, sweeps)
SCHEMA_VERSION = 1
ADAPTIVE_NAMESPACE = "mergeval.adaptive"  # cache rows: benchmark state key -> {version, state}
ADAPTIVE_STATE_VERSION = 1

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


def _insert_batch(db: sqlite3.Connection, model_fp: str, check_hash: str, run_id: int | None,
                  items: Iterable[ItemRow], cache: Iterable[tuple[str, str, Any]]) -> int:
    """Insert items (kept when already stored) and cache entries inside the caller's transaction."""
    now = time.time()
    before = db.total_changes
    db.executemany(
        "INSERT OR IGNORE INTO items (model_fp, check_hash, item_id, run_id, metrics, data, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        [(model_fp, check_hash, str(it.item_id), run_id, _dumps(it.metrics), _dumps(it.data), now) for it in items],
    )
    added = db.total_changes - before
    db.executemany(
        "INSERT OR REPLACE INTO cache (namespace, key, value, created_at) VALUES (?, ?, ?, ?)",
        [(ns, key, _dumps(value), now) for ns, key, value in cache],
    )
    return added


_IN_CHUNK = 500  # item ids per `IN (...)`, well under SQLite's bound-variable limit


def _id_chunks(ids: Iterable[Any]) -> Iterator[tuple[list[str], str]]:
    """Distinct item ids (as text) in chunks of `_IN_CHUNK`, each with its `?, ?, ...` placeholders."""
    distinct = list(dict.fromkeys(str(i) for i in ids))
    for start in range(0, len(distinct), _IN_CHUNK):
        chunk = distinct[start:start + _IN_CHUNK]
        yield chunk, ", ".join("?" * len(chunk))


_TABLES = frozenset({"meta", "models", "checks", "runs", "items", "cache", "merges"})
# Stores whose integrity this process has checked before writing: (device, inode, size, mtime).
_CHECKED: set[tuple[int, int, int, int]] = set()


def _guarded(method):
    """SQLite errors from a store method become one clear StoreError (damaged, locked, read-only, ...)."""

    @functools.wraps(method)
    def wrapper(self: Store, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, (sqlite3.IntegrityError, sqlite3.ProgrammingError, sqlite3.InterfaceError)):
                raise  # a bug in mergeval, not a problem with the file
            raise self._error(exc) from exc

    return wrapper


def _creatable(path: Path) -> None:
    """Raise a StoreError unless `path` can be created: its nearest existing ancestor is a writable folder."""
    for ancestor in path.parents:
        if ancestor.exists() or ancestor.is_symlink():
            if not ancestor.is_dir():
                raise StoreError(
                    f"Cannot create the results store {path}: {ancestor} is a file, not a folder. "
                    "Pass --store with a path inside a folder."
                )
            if not os.access(ancestor, os.W_OK | os.X_OK):
                raise StoreError(
                    f"Cannot create the results store {path}: no permission to write in {ancestor}. "
                    "Pass --store with a path in a folder you can write to."
                )
            return


class Store:
    """A handle on one results database. Cheap to open; use as a context manager or call close().

    Nothing is written until the first write: a missing store file (and its folder) is created then, and
    the file's integrity is checked then (`PRAGMA quick_check`, once per process), so a run that fails
    before storing anything leaves no file behind and a damaged store is never written to. A file that
    is not a mergeval store is never modified. `readonly=True` opens an existing store for reading only
    (also in a read-only folder); `create=False` refuses a missing store."""

    def __init__(self, path: str | Path = DEFAULT_STORE, *, create: bool = True, readonly: bool = False):
        self.path = Path(path)
        self.readonly = readonly
        self._pending = False  # no store file yet (or an empty one): reads see an empty schema in memory
        self._ready = False  # integrity checked and WAL on, before the first write
        self._transaction: object | None = None  # the open write transaction's token (see `transaction`)
        if self.path.is_dir():
            raise StoreError(f"{self.path} is a folder, not a results store file. Pass --store PATH/to/file.db.")
        if not self.path.exists():
            if not create or readonly:
                raise StoreError(
                    f"No results store at {self.path}. Run `mergeval eval` first, or pass --store PATH."
                )
            _creatable(self.path)
            self._open_pending()
            return
        try:
            self._db = self._connect()
        except sqlite3.DatabaseError as exc:
            raise self._error(exc) from exc
        try:
            version, tables = self._inspect(self._db)
            if version == 0 and not tables:  # an empty file: becomes a store at the first write
                self._db.close()
                if readonly:
                    raise StoreError(f"{self.path} is empty, not a results store. Run `mergeval eval` first.")
                self._open_pending()
                return
            self._refuse_foreign(version, tables)
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise self._error(exc) from exc
        if version < SCHEMA_VERSION:  # an older mergeval store (no such version yet): upgrade it
            self._db.close()
            raise StoreError(
                f"{self.path} has schema {version}, which this mergeval cannot upgrade. Pass --store with "
                "another file."
            )

    # -- lifecycle -------------------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        if self.readonly:
            return self._connect_readonly()
        db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
        db.execute("PRAGMA busy_timeout = 30000")
        db.execute("PRAGMA foreign_keys = ON")
        return db

    def _connect_readonly(self) -> sqlite3.Connection:
        """Open for reading only (`query_only`: SQLite refuses any write). A read-write connection is tried
        first, so that closing it removes the -wal and -shm files as a writer's last close does; a WAL store
        in a folder mergeval cannot write to (where SQLite cannot create -shm) is read as immutable when no
        write-ahead log is pending."""
        uri = "file:" + pathname2url(str(self.path.resolve()))
        failure: sqlite3.OperationalError | None = None
        for mode in ("rw", "ro"):
            db = sqlite3.connect(f"{uri}?mode={mode}", uri=True, timeout=30.0, isolation_level=None)
            try:
                db.execute("PRAGMA busy_timeout = 30000")
                db.execute("PRAGMA query_only = ON")
                db.execute("SELECT count(*) FROM sqlite_master").fetchone()
                return db
            except sqlite3.OperationalError as exc:
                db.close()
                if "unable to open" not in str(exc):
                    raise
                failure = exc
        wal = Path(f"{self.path}-wal")
        if wal.exists() and wal.stat().st_size > 0:
            raise StoreError(
                f"The results store {self.path} has recent results in {wal.name} that SQLite cannot read in a "
                "folder it cannot write to. Make the folder writable, or copy the store with its -wal file "
                "to a writable folder and pass --store."
            ) from failure
        return sqlite3.connect(f"{uri}?mode=ro&immutable=1", uri=True, isolation_level=None)

    def _open_pending(self) -> None:
        """Reads before the first write see an empty store (the schema in memory); no file is made."""
        self._pending = True
        self._db = sqlite3.connect(":memory:", isolation_level=None)
        self._migrate(self._db, 0)

    @staticmethod
    def _inspect(db: sqlite3.Connection) -> tuple[int, set[str]]:
        version = db.execute("PRAGMA user_version").fetchone()[0]
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        return version, tables

    def _refuse_foreign(self, version: int, tables: set[str]) -> None:
        """Raise (closing the file untouched) unless it holds mergeval's tables and schema version."""
        if version > SCHEMA_VERSION:
            self._db.close()
            raise StoreError(
                f"{self.path} was written by a newer mergeval (schema {version} > {SCHEMA_VERSION}). "
                "Upgrade mergeval (pip install -U mergeval) to read it."
            )
        ours = version > 0 and _TABLES <= tables
        if ours:
            row = self._db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            ours = row is not None
        if not ours:
            self._db.close()
            raise StoreError(
                f"{self.path} is an SQLite database but not a mergeval store (it lacks mergeval's tables); "
                "mergeval did not modify it. Pass --store with another path."
            )

    def _migrate(self, db: sqlite3.Connection, version: int) -> None:
        """Bring the schema from `version` to SCHEMA_VERSION in one transaction (another process may be
        doing the same: the version is read again under the write lock)."""
        db.execute("BEGIN IMMEDIATE")
        try:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            for target in range(version, SCHEMA_VERSION):
                for statement in _MIGRATIONS[target].split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute(f"PRAGMA user_version = {target + 1}")
            db.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
            )
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def _prepare_write(self) -> None:
        """Before the first write: create the file if there is none, check the file is not damaged, turn on
        WAL. Raises a StoreError (nothing written) when it cannot."""
        if self._ready:
            return
        if self.readonly:
            raise StoreError(f"{self.path} was opened read-only; mergeval cannot write to it.")
        if self._pending:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(
                    f"Cannot create the folder of the results store {self.path} ({exc.strerror}). "
                    "Pass --store with a path in a folder you can write to."
                ) from exc
            db = self._connect()
            try:
                version, tables = self._inspect(db)
                if version or tables:  # another process made it meanwhile
                    self._db.close()
                    self._db = db
                    self._refuse_foreign(version, tables)
                else:
                    self._migrate(db, 0)
                    self._db.close()
                    self._db = db
            except sqlite3.DatabaseError as exc:
                db.close()
                raise self._error(exc) from exc
            self._pending = False
        stat = self.path.stat()
        key = (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)
        if key not in _CHECKED:
            problems = [r[0] for r in self._db.execute("PRAGMA quick_check(3)").fetchall()]
            if problems != ["ok"]:
                raise self._damaged("; ".join(problems))
            _CHECKED.add(key)
        if self._db.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
            self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute("PRAGMA synchronous = NORMAL")
        self._ready = True

    def _damaged(self, detail: str) -> StoreError:
        return StoreError(
            f"The results store {self.path} is damaged ({detail[:200]}); mergeval did not write to it. Keep it "
            f"aside (`sqlite3 {self.path} .recover` salvages what is readable) and pass --store with a new file."
        )

    def _error(self, exc: sqlite3.DatabaseError) -> StoreError:
        text = str(exc)
        low = text.lower()
        if "malformed" in low or "corrupt" in low:
            return self._damaged(text)
        if "not a database" in low or "file is encrypted" in low:
            return StoreError(
                f"{self.path} is not a readable mergeval store ({text}). Move it aside and run again to start "
                "a fresh store, or pass --store to use another file; mergeval did not modify it."
            )
        if "locked" in low or "busy" in low:
            return StoreError(
                f"The results store {self.path} stayed locked by another process for 30 s ({text}). Wait for "
                "it to finish, then run again."
            )
        if "readonly" in low or "read-only" in low:
            return StoreError(
                f"Cannot write to the results store {self.path} ({text}). Make it and its folder writable, or "
                "pass --store with a path you can write to."
            )
        if "full" in low:
            return StoreError(f"The disk holding {self.path} is full ({text}). Free space and run again.")
        if not self.readonly and not os.access(self.path.parent, os.W_OK):
            return StoreError(
                f"Cannot open the results store {self.path} for writing: its folder is read-only (SQLite keeps "
                "-wal and -shm files beside the store). Copy the store to a writable folder and pass --store."
            )
        return StoreError(
            f"Cannot use the results store {self.path} ({text}). Check that the file and its folder are "
            "readable (and writable for commands that evaluate), or pass --store with another file."
        )

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (they never nest). A Ctrl-C can land right after BEGIN or after the body, before
        COMMIT, where no handler of this write runs: the transaction stays open and its cleanup waits until the
        traceback holding it is dropped. So the next write first rolls such a leftover back (it was never
        committed), and a late cleanup only ever rolls back its own transaction."""
        self._prepare_write()
        if self._db.in_transaction:
            self._db.execute("ROLLBACK")
        token = self._transaction = object()
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            if self._transaction is token and self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise
        else:
            self._db.execute("COMMIT")

    # -- models ----------------------------------------------------------------------------------------

    @_guarded
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

    @_guarded
    def model(self, fingerprint: str) -> ModelRow | None:
        row = self._db.execute(
            "SELECT fingerprint, name, reference, kind, metadata FROM models WHERE fingerprint = ?", (fingerprint,)
        ).fetchone()
        return ModelRow(row[0], row[1], row[2], row[3], json.loads(row[4])) if row else None

    @_guarded
    def models(self) -> list[ModelRow]:
        rows = self._db.execute(
            "SELECT fingerprint, name, reference, kind, metadata FROM models ORDER BY created_at"
        ).fetchall()
        return [ModelRow(r[0], r[1], r[2], r[3], json.loads(r[4])) for r in rows]

    def find_models(self, key: str) -> list[ModelRow]:
        """Models whose name, reference or fingerprint prefix equals `key`."""
        return [m for m in self.models() if key in (m.name, m.reference) or m.fingerprint.startswith(key)]

    # -- checks ----------------------------------------------------------------------------------------

    @_guarded
    def upsert_check(self, check_hash: str, *, kind: str, name: str, config: Mapping[str, Any]) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT OR IGNORE INTO checks (hash, kind, name, config, created_at) VALUES (?, ?, ?, ?, ?)",
                (check_hash, kind, name, _dumps(dict(config)), time.time()),
            )

    @_guarded
    def check(self, check_hash: str) -> CheckRow | None:
        row = self._db.execute("SELECT hash, kind, name, config FROM checks WHERE hash = ?", (check_hash,)).fetchone()
        return CheckRow(row[0], row[1], row[2], json.loads(row[3])) if row else None

    @_guarded
    def checks(self, kind: str | None = None) -> list[CheckRow]:
        query = "SELECT hash, kind, name, config FROM checks"
        rows = self._db.execute(query + (" WHERE kind = ?" if kind else "") + " ORDER BY created_at",
                                (kind,) if kind else ()).fetchall()
        return [CheckRow(r[0], r[1], r[2], json.loads(r[3])) for r in rows]

    # -- runs ------------------------------------------------------------------------------------------

    @_guarded
    def start_run(self, model_fp: str, check_hash: str, provenance: Mapping[str, Any]) -> int:
        with self.transaction() as db:
            cur = db.execute(
                "INSERT INTO runs (model_fp, check_hash, status, provenance, started_at) VALUES (?, ?, ?, ?, ?)",
                (model_fp, check_hash, "running", _dumps(dict(provenance)), time.time()),
            )
            return int(cur.lastrowid)

    @_guarded
    def finish_run(self, run_id: int, status: str = "done", provenance: Mapping[str, Any] | None = None) -> None:
        with self.transaction() as db:
            n = db.execute("SELECT count(*) FROM items WHERE run_id = ?", (run_id,)).fetchone()[0]
            if provenance is not None:
                db.execute("UPDATE runs SET provenance = ? WHERE id = ?", (_dumps(dict(provenance)), run_id))
            db.execute(
                "UPDATE runs SET status = ?, finished_at = ?, n_items = ? WHERE id = ?",
                (status, time.time(), n, run_id),
            )

    @_guarded
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
        return self.add_batch(model_fp, check_hash, run_id, items)

    @_guarded
    def add_batch(self, model_fp: str, check_hash: str, run_id: int | None, items: Iterable[ItemRow],
                  *, cache: Iterable[tuple[str, str, Any]] = ()) -> int:
        """Store a batch of items and the cache entries that came with it, in one transaction (the runner's
        write); items already stored are kept as they are. Returns how many items were new."""
        with self.transaction() as db:
            return _insert_batch(db, model_fp, check_hash, run_id, items, cache)

    @_guarded
    def record_run(self, model_fp: str, check_hash: str, *, status: str, provenance: Mapping[str, Any],
                   batches: Iterable[tuple[Iterable[ItemRow], Iterable[tuple[str, str, Any]]]],
                   started_at: float | None = None) -> tuple[int, int]:
        """A finished run (a remote shard) in ONE transaction: its run row, its items and cache entries.
        Returns (run id, items that were new)."""
        now = time.time()
        with self.transaction() as db:
            cur = db.execute(
                "INSERT INTO runs (model_fp, check_hash, status, provenance, started_at) VALUES (?, ?, ?, ?, ?)",
                (model_fp, check_hash, "running", _dumps(dict(provenance)), started_at or now),
            )
            run_id = int(cur.lastrowid)
            added = sum(_insert_batch(db, model_fp, check_hash, run_id, items, cache) for items, cache in batches)
            n = db.execute("SELECT count(*) FROM items WHERE run_id = ?", (run_id,)).fetchone()[0]
            db.execute("UPDATE runs SET status = ?, finished_at = ?, n_items = ? WHERE id = ?",
                       (status, time.time(), n, run_id))
            return run_id, added

    @_guarded
    def item_ids(self, model_fp: str, check_hash: str) -> set[str]:
        rows = self._db.execute(
            "SELECT item_id FROM items WHERE model_fp = ? AND check_hash = ?", (model_fp, check_hash)
        ).fetchall()
        return {r[0] for r in rows}

    @_guarded
    def items(self, model_fp: str, check_hash: str, *, with_data: bool = False,
              ids: Iterable[str] | None = None) -> list[ItemRow]:
        """The stored items of a model and check (`ids`: only these item ids)."""
        cols = "item_id, metrics" + (", data" if with_data else "")
        query = f"SELECT {cols} FROM items WHERE model_fp = ? AND check_hash = ?"
        if ids is None:
            rows = self._db.execute(query, (model_fp, check_hash)).fetchall()
        else:
            rows = []
            for chunk, marks in _id_chunks(ids):
                rows += self._db.execute(query + f" AND item_id IN ({marks})",
                                         (model_fp, check_hash, *chunk)).fetchall()
        return [ItemRow(r[0], json.loads(r[1]), json.loads(r[2]) if with_data else {}) for r in rows]

    @_guarded
    def count_items(self, model_fp: str, check_hash: str) -> int:
        return self._db.execute(
            "SELECT count(*) FROM items WHERE model_fp = ? AND check_hash = ?", (model_fp, check_hash)
        ).fetchone()[0]

    # -- identities that changed -----------------------------------------------------------------------

    @_guarded
    def adopt_items(
        self,
        model_fp: str,
        old_hash: str,
        new_hash: str,
        *,
        kind: str,
        name: str,
        config: Mapping[str, Any],
        item_ids: Iterable[str] | None = None,
    ) -> int:
        """Move one model's items from a check's old identity to its current one: the same check, hashed the
        way an earlier mergeval did (callers decide that; see mergeval.dtypes.adopt_legacy_dtype_rows and
        mergeval.checks.lmeval.adopt_legacy_items). `item_ids`: only those items (default: all of them).

        Items the current identity already holds are kept and their old copies dropped (the same evaluation
        stored twice); runs left with no item under the old identity move with their items; an old check row
        nothing refers to any more is deleted. One transaction; returns how many items moved."""
        with self.transaction() as db:
            db.execute(
                "INSERT OR IGNORE INTO checks (hash, kind, name, config, created_at) VALUES (?, ?, ?, ?, ?)",
                (new_hash, kind, name, _dumps(dict(config)), time.time()),
            )
            if item_ids is None:
                ids = [r[0] for r in db.execute(
                    "SELECT item_id FROM items WHERE model_fp = ? AND check_hash = ?", (model_fp, old_hash))]
            else:
                ids = [str(i) for i in item_ids]
            moved = 0
            for chunk, marks in _id_chunks(ids):
                where = f"model_fp = ? AND check_hash = ? AND item_id IN ({marks})"
                moved += db.execute(f"UPDATE OR IGNORE items SET check_hash = ? WHERE {where}",
                                    (new_hash, model_fp, old_hash, *chunk)).rowcount
                db.execute(f"DELETE FROM items WHERE {where}", (model_fp, old_hash, *chunk))
            db.execute(
                "UPDATE runs SET check_hash = ? WHERE model_fp = ? AND check_hash = ? AND NOT EXISTS "
                "(SELECT 1 FROM items WHERE items.run_id = runs.id AND items.check_hash = ?)",
                (new_hash, model_fp, old_hash, old_hash),
            )
            db.execute(
                "DELETE FROM checks WHERE hash = ? AND NOT EXISTS (SELECT 1 FROM items WHERE check_hash = ?) "
                "AND NOT EXISTS (SELECT 1 FROM runs WHERE check_hash = ?)",
                (old_hash, old_hash, old_hash),
            )
            return moved

    # -- cache -----------------------------------------------------------------------------------------

    @_guarded
    def cache_get(self, namespace: str, key: str) -> Any | None:
        row = self._db.execute("SELECT value FROM cache WHERE namespace = ? AND key = ?", (namespace, key)).fetchone()
        return json.loads(row[0]) if row else None

    @_guarded
    def cache_put(self, namespace: str, key: str, value: Any) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO cache (namespace, key, value, created_at) VALUES (?, ?, ?, ?)",
                (namespace, key, _dumps(value), time.time()),
            )

    @_guarded
    def cache_count(self, namespace: str) -> int:
        return self._db.execute("SELECT count(*) FROM cache WHERE namespace = ?", (namespace,)).fetchone()[0]

    # -- adaptive runs: stopping state (JSON rows in the cache table, versioned) ------------------------

    def adaptive_state(self, key: str) -> dict[str, Any] | None:
        """An adaptive run's stopping state of one benchmark (mergeval.analysis.adaptive), or None when there
        is none or it was written in a format this version does not read (the run then starts over, reusing
        every stored item)."""
        value = self.cache_get(ADAPTIVE_NAMESPACE, key)
        if not isinstance(value, dict) or value.get("version") != ADAPTIVE_STATE_VERSION:
            return None
        return value.get("state") if isinstance(value.get("state"), dict) else None

    def put_adaptive_state(self, key: str, state: Mapping[str, Any]) -> None:
        self.cache_put(ADAPTIVE_NAMESPACE, key, {"version": ADAPTIVE_STATE_VERSION, "state": dict(state)})

    # -- merges ----------------------------------------------------------------------------------------

    @_guarded
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

    @_guarded
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
