"""Identity is content: the same config hashes the same in two processes, functions by their code."""

import json
import subprocess
import sys
import textwrap

import pytest

from mergeval.core.identity import IdentityError, callable_identity, canonical, content_hash


def _process_docs(dataset):  # stands in for an lm-eval `!function utils.process_docs`
    return dataset.map(lambda doc: doc)


def test_function_identity_is_its_name_and_code_not_its_address():
    first = callable_identity(_process_docs)
    assert first["function"].endswith("test_identity._process_docs")
    assert "0x" not in json.dumps(first)
    assert callable_identity(_process_docs) == first

    def _process_docs_edited(dataset):
        return dataset.map(lambda doc: {**doc, "x": 1})

    assert callable_identity(_process_docs_edited)["source_sha256"] != first["source_sha256"]


def test_canonical_refuses_values_without_content():
    with pytest.raises(IdentityError):
        canonical({"x": object()})
    with pytest.raises(IdentityError):
        canonical(float("nan"))


def test_key_order_and_containers_do_not_matter():
    assert content_hash({"a": 1, "b": [1, 2]}) == content_hash({"b": (1, 2), "a": 1})
    assert content_hash({"s": {3, 1, 2}}) == content_hash({"s": [1, 2, 3]})
    assert content_hash({"a": 1}) != content_hash({"a": 2})


def test_the_same_config_with_functions_hashes_the_same_in_two_processes(tmp_path):
    module = tmp_path / "task_utils.py"
    module.write_text("def process_docs(ds):\n    return ds\n")
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(tmp_path)!r})
        import task_utils
        from mergeval.core.identity import content_hash
        print(content_hash({{"fewshot_config": {{"process_docs": task_utils.process_docs}}, "shots": 10}}))
    """)
    hashes = {subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
              .stdout.strip() for _ in range(2)}
    assert len(hashes) == 1 and len(next(iter(hashes))) == 24
    module.write_text("def process_docs(ds):\n    return ds.shuffle()\n")
    changed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert changed.stdout.strip() not in hashes
