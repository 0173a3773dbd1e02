"""The per-item diff (mergeval.analysis.itemdiff) against the rows a real evaluation stored: two tiny random
models on the mini smoke suite (multiple choice, MMLU-style subjects, Winogrande), plus MT-Bench and HumanEval
rows written in the layout their engines write."""

import json
import sqlite3

import pytest
from playwright.sync_api import expect

from browser import open_view
from mergeval import api
from mergeval.analysis.itemdiff import NOT_STORED, compact_item, item_diff_payload, item_diffs
from mergeval.checks.humaneval import _item_row
from mergeval.engines.code.sandbox import ExecResult
from mergeval.errors import UserError
from mergeval.report import Report
from mergeval.store import ItemRow, Store


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory, tiny_models, mini_suite):
    db = tmp_path_factory.mktemp("itemdiff") / "r.db"
    api.evaluate([tiny_models / "merged", tiny_models / "parent-b"], suite=str(mini_suite), limit=12, store=db,
                 backend="hf")
    return db


def _stored(db, model, task, metric):
    """item id -> (score, data) of one model's stored rows of one task, read straight from SQLite."""
    con = sqlite3.connect(db)
    try:
        rows = con.execute(
            "SELECT i.item_id, i.metrics, i.data FROM items i JOIN models m ON m.fingerprint = i.model_fp "
            "JOIN checks c ON c.hash = i.check_hash WHERE m.name = ? AND c.name = ?", (model, task)).fetchall()
    finally:
        con.close()
    return {r[0]: (json.loads(r[1])[metric], json.loads(r[2])) for r in rows}


@pytest.mark.parametrize(("task", "metric"), [("smoke_arc", "acc_norm,none"), ("smoke_winogrande", "acc,none")])
def test_lost_and_gained_are_the_stored_disagreements(evaluated, task, metric):
    merged, parent = _stored(evaluated, "merged", task, metric), _stored(evaluated, "parent-b", task, metric)
    assert merged.keys() == parent.keys() and merged
    lost = {i for i in merged if merged[i][0] < parent[i][0]}
    gained = {i for i in merged if merged[i][0] > parent[i][0]}
    assert lost | gained  # the tiny models disagree on some items of both tasks
    result = item_diffs(evaluated, "merged", "parent-b", task)
    assert [t.task for t in result.tasks] == [task] and result.tasks[0].metric == metric
    assert result.tasks[0].n_compared == len(merged)
    assert (result.n_lost, result.n_gained) == (len(lost), len(gained))
    assert {it.item_id for it in result.items if it.status == "lost"} == lost
    assert {it.item_id for it in result.items if it.status == "gained"} == gained
    only_lost = item_diffs(evaluated, "merged", "parent-b", task, "lost")
    assert {it.item_id for it in only_lost.items} == lost and only_lost.n_gained == len(gained)  # counts complete
    for it in result.items:
        data = merged[it.item_id][1]
        assert it.gold == data["target"]
        lls = [r[0] for r in data["filtered_resps"]["none"]]
        assert it.candidate.loglikelihoods == pytest.approx(lls)
        assert it.candidate.score == merged[it.item_id][0] and it.parent.score == parent[it.item_id][0]


def test_question_and_choice_texts_are_stored_beside_the_result(evaluated):
    arc = _stored(evaluated, "merged", "smoke_arc", "acc_norm,none")
    text = next(iter(arc.values()))[1]["text"]
    assert text["question"].strip() and len(text["choices"]) >= 2
    wino = _stored(evaluated, "merged", "smoke_winogrande", "acc,none")
    assert all("choices" not in d.get("text", {}) for _, d in wino.values())  # contexts, not answer choices
    result = item_diffs(evaluated, "merged", "parent-b", "smoke_arc")
    assert result.items
    for it in result.items:  # acc_norm's choice: the best length-normalised log-likelihood over the stored texts
        assert it.question == arc[it.item_id][1]["text"]["question"] and it.choices
        norm = [ll / len(c) for ll, c in zip(it.candidate.loglikelihoods, it.choices, strict=True)]
        assert it.candidate.answer == norm.index(max(norm))
        assert (it.candidate.answer == it.gold) == (it.candidate.score == 1)


def test_subject_filter_and_benchmark_names(evaluated):
    mmlu = item_diffs(evaluated, "merged", "parent-b", "smoke_mmlu")  # a prefix: every subject's task
    assert {t.task for t in mmlu.tasks} == {"smoke_mmlu_astronomy", "smoke_mmlu_nutrition"}
    assert all(t.n_compared == 8 for t in mmlu.tasks)
    result = item_diffs(evaluated, "merged", "parent-b")
    assert len(result.tasks) == 4
    wino = item_diffs(evaluated, "merged", "parent-b", subject="winogrande")
    expected = next(t for t in result.tasks if t.task == "smoke_winogrande")
    assert wino.items and {it.group for it in wino.items} == {"smoke_winogrande"}
    assert len(wino.items) == expected.n_lost + expected.n_gained
    limited = item_diffs(evaluated, "merged", "parent-b", limit=1)
    assert len(limited.items) <= 1 and limited.n_lost + limited.n_gained == sum(
        t.n_lost + t.n_gained for t in limited.tasks)


def test_rows_without_texts_say_not_stored(evaluated, tmp_path):
    old = tmp_path / "old.db"
    src = sqlite3.connect(evaluated)
    src.backup(dst := sqlite3.connect(old))
    src.close()
    dst.execute("UPDATE items SET data = json_remove(data, '$.text')")
    dst.commit()
    dst.close()
    result = item_diffs(old, "merged", "parent-b", "smoke_arc")
    assert result.items and all(it.question == NOT_STORED and it.choices is None for it in result.items)


def test_unknown_model_task_and_several_configurations(evaluated, tmp_path):
    with pytest.raises(UserError, match="No model 'nope'"):
        item_diffs(evaluated, "nope", "parent-b", "smoke_arc")
    with pytest.raises(UserError, match="No stored results for task 'nope'"):
        item_diffs(evaluated, "merged", "parent-b", "nope")
    with pytest.raises(UserError, match="only='lost'"):
        item_diffs(evaluated, "merged", "parent-b", "smoke_arc", "worse")  # type: ignore[arg-type]
    # The same task stored under a second configuration (another dtype): named, and picked with config=.
    copy = tmp_path / "two.db"
    src = sqlite3.connect(evaluated)
    src.backup(dst := sqlite3.connect(copy))
    src.close()
    dst.close()
    with Store(copy) as store:
        row = next(c for c in store.checks("lm-eval") if c.name == "smoke_arc")
        config = {**row.config, "dtype": "bfloat16"}
        store.upsert_check("f" * 64, kind="lm-eval", name="smoke_arc", config=config)
        for model in ("merged", "parent-b"):
            fp = store.find_models(model)[0].fingerprint
            items = store.items(fp, row.hash, with_data=True)
            store.add_items(fp, "f" * 64, store.start_run(fp, "f" * 64, {}), items)
    with pytest.raises(UserError, match="2 configurations") as err:
        item_diffs(copy, "merged", "parent-b", "smoke_arc")
    assert "ffffffffffff" in str(err.value) and row.hash[:12] in str(err.value)
    assert item_diffs(copy, "merged", "parent-b", "smoke_arc", config="dtype=bfloat16").tasks[0].check == "f" * 64
    assert item_diffs(copy, "merged", "parent-b", "smoke_arc", config=row.hash[:10]).tasks[0].check == row.hash


def _other_rows(db):
    """MT-Bench single grading and HumanEval rows, in the layout their engines write (mergeval.engines.chat
    .judging / .generation, mergeval.checks.humaneval), for models `m` and `p`."""
    with Store(db) as store:
        for fp, name in (("m" * 64, "m"), ("p" * 64, "p")):
            store.upsert_model(fp, name=name, reference=name, kind="local")
        store.upsert_check("a" * 64, kind="mtbench-answers", name="mt-bench:mergeval-v1",
                           config={"kind": "mtbench-answers", "config": {"questions": "q"}})
        store.upsert_check("j" * 64, kind="mtbench-single", name="mt-bench:mergeval-v1:judge",
                           config={"kind": "mtbench-single", "config": {"answers": "a" * 64, "judge": {"name": "j"}}})
        store.upsert_check("h" * 64, kind="humaneval", name="humaneval", config={"engine": "humaneval", "n": 1})
        ratings = {"m": {"81": (8, 7), "82": (3, 4)}, "p": {"81": (8, 7), "82": (9, 9)}}
        for fp, name in (("m" * 64, "m"), ("p" * 64, "p")):
            run = store.start_run(fp, "a" * 64, {})
            store.add_items(fp, "a" * 64, run, [ItemRow(q, {}, {"turns": [f"{name} answer {q} t1", f"{name} t2"],
                                                                "category": "writing"}) for q in ("81", "82")])
            judged = []
            for q, (r1, r2) in ratings[name].items():
                turns = {str(t): {"prompt": "single-v1", "ratings": [r],
                                  "judgments": [{"text": f"Rating: [[{r}]] for {name}", "reminder_text": None}]}
                         for t, r in ((1, r1), (2, r2))}
                judged.append(ItemRow(q, {"score_t1": r1, "score_t2": r2, "n_unparsed": 0},
                                      {"question_id": int(q), "category": "math" if q == "82" else "writing",
                                       "turns": turns, "unparsed_turns": []}))
            store.add_items(fp, "j" * 64, store.start_run(fp, "j" * 64, {}), judged)
            passed = name == "p"
            rows = [_item_row("HumanEval/0#0", f"return {name}", ExecResult(passed, "passed" if passed else "failed",
                                                                              "" if passed else "AssertionError",
                                                                              0.1, "none")),
                    _item_row("HumanEval/1#0", "return 1", ExecResult(True, "passed", "", 0.1, "none"))]
            store.add_items(fp, "h" * 64, store.start_run(fp, "h" * 64, {}), rows)


def test_mtbench_and_humaneval_items(tmp_path):
    db = tmp_path / "other.db"
    _other_rows(db)
    mt = item_diffs(db, "m", "p", "mt-bench")
    assert mt.tasks[0].n_compared == 2 and (mt.n_lost, mt.n_gained) == (1, 0)
    (item,) = mt.items
    assert item.item_id == "82" and item.group == "math" and item.status == "lost"
    turns = item.candidate.detail["turns"]
    assert [t["rating"] for t in turns] == [3, 4] and turns[0]["answer"] == "m answer 82 t1"
    assert turns[1]["judgment"] == "Rating: [[4]] for m"
    assert item_diffs(db, "m", "p", "mt-bench", subject="writing").items == []
    assert item_diffs(db, "m", "p", "mtbench").items[0].item_id == "82"  # the report's benchmark name
    he = item_diffs(db, "m", "p", "humaneval", "lost")
    (item,) = he.items
    assert item.group == "HumanEval/0" and item.candidate.answer == "return m"
    assert item.candidate.detail["status"] == "failed" and item.candidate.detail["message"] == "AssertionError"
    assert item.parent.detail["status"] == "passed"
    assert item_diffs(db, "p", "m", "humaneval", "gained").items[0].item_id == "HumanEval/0#0"


def test_payload_caps_items_and_keeps_counts(evaluated):
    with Store(evaluated, readonly=True) as store:
        models = {m.name: m.fingerprint for m in store.models()}
    report = Report.from_data({
        "models": [{"name": "merged", "fingerprint": models["merged"], "role": "candidate"},
                   {"name": "parent-b", "fingerprint": models["parent-b"], "role": "parent"}],
        "benchmarks": [{"name": "smoke_winogrande", "kind": "lm-eval"}, {"name": "smoke_mmlu", "kind": "lm-eval"}],
    })
    full = item_diffs(evaluated, "merged", "parent-b", "smoke_winogrande")
    payload = item_diff_payload(evaluated, report, max_items=2, max_chars=20)
    benchmarks = {b["name"]: b for b in payload["benchmarks"]}
    mmlu = benchmarks["smoke_mmlu"]["candidates"]["merged"]  # both subjects; no item differs
    assert mmlu["counts"]["parent-b"]["n_compared"] == 16 and mmlu["items"] == []
    block = benchmarks["smoke_winogrande"]["candidates"]["merged"]
    assert block["counts"]["parent-b"] == {"n_compared": full.n_compared, "n_lost": full.n_lost, "n_gained": full.n_gained}
    assert len(full.items) > 2 and len(block["items"]) == 2 and block["truncated"]
    for it, whole in zip(block["items"], full.items, strict=False):
        assert (it["p"], it["s"], it["id"]) == ("parent-b", whole.status, whole.item_id)
    json.dumps(payload)  # plain JSON
    long = full.items[0]
    long.question = "x" * 50
    assert compact_item(long, "parent-b", max_chars=20)["q"] == "x" * 20 + "... [30 more chars]"


def test_html_partial_renders_lazily_filters_and_escapes(browser, evaluated, tmp_path):
    """The partial in headless Chromium under the report's kind of CSP: nothing drawn until a benchmark is
    opened, 40 at a time, filters, and model text shown as text (never parsed as HTML)."""
    from mergeval.render.itemview import SCRIPT, SCRIPT_HASH, render_itemview

    assert "innerHTML" not in SCRIPT and "insertAdjacentHTML" not in SCRIPT and "document.write" not in SCRIPT
    with Store(evaluated, readonly=True) as store:
        fps = {m.name: m.fingerprint for m in store.models()}
    report = {"models": [{"name": "merged", "fingerprint": fps["merged"], "role": "candidate"},
                         {"name": "parent-b", "fingerprint": fps["parent-b"], "role": "parent"}],
              "benchmarks": [{"name": "smoke_winogrande", "kind": "lm-eval"}]}
    payload = item_diff_payload(evaluated, report)
    items = payload["benchmarks"][0]["candidates"]["merged"]["items"]
    n_lost = sum(it["s"] == "lost" for it in items)
    hostile = "</script><img src=x onerror=\"document.title='pwned'\"><b>bold</b>"
    extra = [{**items[0], "id": f"x{i}", "s": "gained", "q": hostile if i == 0 else f"filler {i}"} for i in range(45)]
    items.extend(extra)
    csp = f"default-src 'none'; style-src 'unsafe-inline'; script-src 'sha256-{SCRIPT_HASH}'"
    page_html = (f'<!doctype html><html><head><meta charset="utf-8"><title>t</title><meta http-equiv='
                 f'"Content-Security-Policy" content="{csp}"></head><body>{render_itemview(payload)}</body></html>')
    path = tmp_path / "items.html"
    path.write_text(page_html, encoding="utf-8")
    with open_view(browser, path) as view:
        page = view.page
        assert page.locator(".mv-item").count() == 0  # nothing drawn before the section is opened
        page.locator("details[data-mv-bench='0'] summary").click()
        expect(page.locator(".mv-item")).to_have_count(40)  # the details' toggle event is dispatched as a task
        assert page.locator(".mv-summary").text_content().startswith(f"{len(items)} items match; 40 shown")
        page.locator(".mv-more").click()
        assert page.locator(".mv-item").count() == len(items)
        page.locator(".mv-controls select").nth(1).select_option("lost")
        assert page.locator(".mv-item").count() == n_lost
        page.locator(".mv-controls select").nth(1).select_option("")
        page.locator(".mv-search").fill("onerror")
        assert page.locator(".mv-item").count() == 1
        assert page.locator(".mv-question").first.text_content() == hostile  # shown as text
        assert page.locator(".mv-item img, .mv-item b").count() == 0 and page.title() == "t"
        assert view.problems.all() == []


def test_payload_of_mtbench_and_humaneval(tmp_path):
    db = tmp_path / "other.db"
    _other_rows(db)
    report = {"models": [{"name": "m", "fingerprint": "m" * 64, "role": "candidate"},
                         {"name": "p", "fingerprint": "p" * 64, "role": "parent"}],
              "benchmarks": [{"name": "mtbench", "display": "MT-Bench"}, {"name": "humaneval"}]}
    payload = item_diff_payload(db, report)
    mt, he = payload["benchmarks"]
    assert (mt["display"], mt["group_label"], he["group_label"]) == ("MT-Bench", "category", "problem")
    assert mt["candidates"]["m"]["counts"] == {"p": {"n_compared": 2, "n_lost": 1, "n_gained": 0}}
    (item,) = mt["candidates"]["m"]["items"]
    assert item["g"] == "math" and item["c"]["detail"]["turns"][0]["rating"] == 3
    (item,) = he["candidates"]["m"]["items"]
    assert (item["id"], item["c"]["answer"], item["c"]["detail"]["status"]) == ("HumanEval/0#0", "return m", "failed")


def test_report_page_carries_the_item_view_under_its_csp(browser, evaluated, tmp_path):
    """write_reports with the store: report.html has the per-item view, its script allowed by the page's own
    Content-Security-Policy, and in Chromium it opens and filters with no console error; without a store (or
    with one that cannot be read) the page is written without it."""
    from mergeval.render.files import write_reports

    with Store(evaluated, readonly=True) as store:
        fps = {m.name: m.fingerprint for m in store.models()}
    report = {"models": [{"name": "merged", "fingerprint": fps["merged"], "role": "candidate"},
                         {"name": "parent-b", "fingerprint": fps["parent-b"], "role": "parent"}],
              "benchmarks": [{"name": "smoke_winogrande", "kind": "lm-eval"}, {"name": "smoke_arc", "kind": "lm-eval"}]}
    full = item_diffs(evaluated, "merged", "parent-b", "smoke_winogrande")
    html = write_reports(report, tmp_path / "with", store=evaluated)["html"]
    text = html.read_text(encoding="utf-8")
    assert text.count('id="per-item"') == 1 and 'href="#per-item"' in text
    without = write_reports(report, tmp_path / "without")["html"].read_text(encoding="utf-8")
    broken = tmp_path / "broken.db"
    broken.write_bytes(b"not a database")
    with_broken = write_reports(report, tmp_path / "broken", store=broken)["html"].read_text(encoding="utf-8")
    assert 'id="per-item"' not in without and 'id="per-item"' not in with_broken
    assert (tmp_path / "broken" / "report.json").is_file()
    with open_view(browser, html) as view:
        page = view.page
        assert page.locator(".mv-item").count() == 0
        page.locator("#per-item details").first.locator("summary").click()
        expect(page.locator(".mv-item")).to_have_count(len(full.items))  # drawn on the (queued) toggle event
        page.locator("#per-item .mv-controls select").nth(1).select_option("lost")
        assert page.locator(".mv-item").count() == full.n_lost
        assert view.overflow() <= 0
        assert view.problems.all() == []
