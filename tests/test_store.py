import hashlib
import sqlite3

import pytest

from mergeval.errors import StoreError
from mergeval.store import SCHEMA_VERSION, ItemRow, Store


def _fill(store: Store) -> int:
    store.upsert_model("fp1", name="m", reference="/x/m", kind="local")
    store.upsert_check("c1", kind="lm-eval", name="arc_challenge", config={"num_fewshot": 25})
    run = store.start_run("fp1", "c1", {"dtype": "float32"})
    store.add_items("fp1", "c1", run, [ItemRow("0", {"acc,none": 1.0}, {"resps": [[-1.0, True]]}),
                                       ItemRow("1", {"acc,none": 0.0})])
    store.finish_run(run)
    return run


def test_roundtrip_and_idempotent_items(tmp_path):
    path = tmp_path / "r" / "m.db"
    with Store(path) as store:
        run = _fill(store)
        # Re-adding stored items keeps the original rows (a resumed run never duplicates or overwrites).
        added = store.add_items("fp1", "c1", run, [ItemRow("1", {"acc,none": 1.0}), ItemRow("2", {"acc,none": 1.0})])
        assert added == 1
        items = {i.item_id: i for i in store.items("fp1", "c1", with_data=True)}
        assert set(items) == {"0", "1", "2"}
        assert items["1"].metrics == {"acc,none": 0.0}
        assert items["0"].data == {"resps": [[-1.0, True]]}
        assert store.runs("fp1")[0].n_items == 2 and store.runs("fp1")[0].status == "done"
    with Store(path, create=False) as again:
        assert again.item_ids("fp1", "c1") == {"0", "1", "2"}
        assert again.model("fp1").reference == "/x/m"
        assert again.check("c1").config == {"num_fewshot": 25}


def test_cache_and_merge_provenance(tmp_path):
    with Store(tmp_path / "s.db") as store:
        store.cache_put("judge", "k", {"score": 7})
        assert store.cache_get("judge", "k") == {"score": 7}
        assert store.cache_get("judge", "missing") is None
        store.upsert_model("fpm", name="merged", reference="/m", kind="local")
        store.record_merge("fpm", method="slerp", config={"t": 0.5}, parameters={"t": 0.5}, seed=1,
                           mergekit_version="0.1.5", parents=["a", "b"], output_path="/m")
        assert store.merge("fpm")["parents"] == ["a", "b"]


def test_corrupt_store_is_a_clear_error_and_left_untouched(tmp_path):
    path = tmp_path / "bad.db"
    path.write_bytes(b"this is not sqlite at all" * 100)
    before = path.read_bytes()
    with pytest.raises(StoreError, match="not a readable mergeval store"):
        Store(path)
    assert path.read_bytes() == before


def test_foreign_sqlite_and_newer_schema_refused(tmp_path):
    foreign = tmp_path / "other.db"
    db = sqlite3.connect(foreign)
    db.execute("CREATE TABLE t (x)")
    db.commit()
    db.close()
    with pytest.raises(StoreError, match="not a mergeval store"):
        Store(foreign)
    newer = tmp_path / "newer.db"
    with Store(newer) as store:
        _fill(store)
    db = sqlite3.connect(newer)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.commit()
    db.close()
    with pytest.raises(StoreError, match="newer mergeval"):
        Store(newer)


def test_missing_store_when_reading(tmp_path):
    with pytest.raises(StoreError, match="No results store"):
        Store(tmp_path / "nope.db", create=False)
    assert not (tmp_path / "nope.db").exists()


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_new_store_file_appears_at_the_first_write_only(tmp_path):
    path = tmp_path / "deep" / "folder" / "s.db"
    with Store(path) as store:
        assert store.models() == [] and store.item_ids("fp", "c") == set() and store.runs() == []
    assert not (tmp_path / "deep").exists()  # a run that stores nothing leaves nothing behind
    with Store(path) as store:
        _fill(store)
    with Store(path, readonly=True) as store:
        assert store.item_ids("fp1", "c1") == {"0", "1"}
    (tmp_path / "empty.db").touch()  # an empty file is a store without tables yet
    with Store(tmp_path / "empty.db") as store:
        assert store.models() == []
        _fill(store)
        assert len(store.runs()) == 1


def test_a_store_path_under_a_file_is_refused_before_anything_is_created(tmp_path):
    (tmp_path / "plain").write_text("x")
    with pytest.raises(StoreError, match="is a file, not a folder"):
        Store(tmp_path / "plain" / "sub" / "s.db")
    assert (tmp_path / "plain").read_text() == "x"


def _damaged_store(tmp_path):
    path = tmp_path / "s.db"
    with Store(path) as store:
        _fill(store)
        for i in range(3):  # enough items for the items table to span pages
            store.add_items("fp1", "c1", 1, [ItemRow(f"x{i}-{j}", {"acc,none": 1.0}, {"resps": "y" * 500})
                                             for j in range(40)])
    db = sqlite3.connect(path)
    root = db.execute("SELECT rootpage FROM sqlite_master WHERE name = 'items'").fetchone()[0]
    size = db.execute("PRAGMA page_size").fetchone()[0]
    db.close()
    with path.open("r+b") as fh:  # one page of the items table overwritten
        fh.seek((root - 1) * size)
        fh.write(b"\x05" + b"\xa5" * 300)
    return path


def test_a_damaged_page_is_one_clear_error_and_the_file_is_never_written(tmp_path):
    path = _damaged_store(tmp_path)
    before = _digest(path)
    with Store(path) as store:
        with pytest.raises(StoreError, match="is damaged"):
            store.item_ids("fp1", "c1")
        assert [m.name for m in store.models()] == ["m"]  # undamaged tables still read
        with pytest.raises(StoreError, match="did not write to it"):  # checked before the first write
            store.upsert_model("fp2", name="other", reference="/x/o", kind="local")
    with Store(path, readonly=True) as store, pytest.raises(StoreError, match="is damaged"):
        store.items("fp1", "c1", with_data=True)
    assert _digest(path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.db"]


def test_a_foreign_sqlite_file_with_user_version_1_is_never_touched(tmp_path):
    path = tmp_path / "app.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE models (id INTEGER)")  # even a table of the same name
    db.execute("PRAGMA user_version = 1")
    db.commit()
    db.close()
    before = _digest(path)
    for kwargs in ({}, {"create": False}, {"readonly": True}):
        with pytest.raises(StoreError, match="not a mergeval store"):
            Store(path, **kwargs)
    assert _digest(path) == before  # still in its own journal mode, not switched to WAL
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "delete"


def test_a_read_only_handle_reads_writes_nothing_and_leaves_no_side_files(tmp_path):
    path = tmp_path / "s.db"
    with Store(path) as store:
        _fill(store)
    before = _digest(path)
    with Store(path, readonly=True) as store:
        assert store.item_ids("fp1", "c1") == {"0", "1"}
        with pytest.raises(StoreError, match="read-only"):
            store.cache_put("ns", "k", 1)
    with pytest.raises(StoreError, match="No results store"):
        Store(tmp_path / "missing.db", readonly=True)
    assert _digest(path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.db"]


def test_items_by_id_reads_only_those_across_query_chunks(tmp_path):
    """`items(..., ids=...)`: the rows of those ids only (more ids than one SQL statement takes at once)."""
    with Store(tmp_path / "ids.db") as store:
        run = _fill(store)
        store.add_items("fp1", "c1", run, [ItemRow(f"x{i}", {"acc,none": i % 2}, {"i": i}) for i in range(1200)])
        wanted = [f"x{i}" for i in range(0, 1200, 2)] + ["0", "missing"]
        rows = store.items("fp1", "c1", with_data=True, ids=wanted)
        assert sorted(r.item_id for r in rows) == sorted(set(wanted) - {"missing"})
        assert all(r.data == {"i": int(r.item_id[1:])} for r in rows if r.item_id.startswith("x"))
        assert store.items("fp1", "c1", ids=[]) == []


def test_a_write_cut_off_by_ctrl_c_leaves_no_transaction_open_behind_it(tmp_path):
    """Ctrl-C can land right after BEGIN (or after the body, before COMMIT), where no handler of the write runs:
    what it leaves is a transaction still open and its cleanup pending. The next write still goes through (so an
    interrupted run is still marked interrupted), the cut-off write is not committed, and its late cleanup (when
    the traceback holding it is dropped) never touches a transaction that is not its own."""
    path = tmp_path / "s.db"
    with Store(path) as store:
        run = _fill(store)
        cut = store.transaction()
        cut.__enter__().execute("DELETE FROM items")  # interrupted here: never reaches COMMIT or ROLLBACK
        store.finish_run(run, status="interrupted")
        with store.transaction() as db:
            db.execute("UPDATE runs SET n_items = 7 WHERE id = ?", (run,))
            cut.gen.close()  # the abandoned write is cleaned up while another one is open
        assert not store._db.in_transaction
    with sqlite3.connect(path) as other:
        assert other.execute("SELECT status, n_items FROM runs").fetchall() == [("interrupted", 7)]
        assert other.execute("SELECT count(*) FROM items").fetchone() == (2,)
