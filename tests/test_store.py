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
    Store(newer).close()
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
