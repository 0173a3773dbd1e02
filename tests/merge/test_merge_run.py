"""`mergeval.merge.merge` / `merge_in_memory`: real mergekit merges of tiny models, provenance stored."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from mergeval.merge import load_recipe, merge, merge_in_memory, merge_provenance, mergekit_version
from mergeval.models import resolve
from mergeval.store import Store


def _weights(folder) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for path in sorted(folder.glob("*.safetensors")):
        out.update(load_file(path))
    return out


def _configs(family):
    a, b, base = str(family.a), str(family.b), str(family.base)
    return {
        "linear": {
            "merge_method": "linear",
            "dtype": "float32",
            "models": [
                {"model": a, "parameters": {"weight": 0.25}},
                {"model": b, "parameters": {"weight": 0.75}},
            ],
        },
        "slerp": {
            "merge_method": "slerp",
            "dtype": "float32",
            "base_model": a,
            "parameters": {"t": 0.5},
            "models": [{"model": a}, {"model": b}],
        },
        "ties": {
            "merge_method": "ties",
            "dtype": "float32",
            "base_model": base,
            "parameters": {"weight": 1.0, "density": 0.5},
            "models": [{"model": a}, {"model": b}],
        },
        "dare_ties": {
            "merge_method": "dare_ties",
            "dtype": "float32",
            "base_model": base,
            "parameters": {"weight": 1.0, "density": 0.5},
            "models": [{"model": a}, {"model": b}],
        },
        "task_arithmetic": {
            "merge_method": "task_arithmetic",
            "dtype": "float32",
            "base_model": base,
            "parameters": {"weight": 0.5},
            "models": [{"model": a}, {"model": b}],
        },
    }


@pytest.mark.parametrize("method", ["linear", "slerp", "ties", "dare_ties", "task_arithmetic"])
def test_merge_writes_a_model_and_records_provenance(family, tmp_path, method):
    config = _configs(family)[method]
    store_path = tmp_path / "s.db"
    result = merge(config, tmp_path / "out", store=store_path, seed=7)

    assert (result.output_path / "config.json").exists()
    assert result.model.fingerprint == resolve(result.output_path).fingerprint
    with Store(store_path) as db:
        prov = merge_provenance(db, result.fingerprint)
        model_row = db.model(result.fingerprint)
    assert prov is not None and model_row is not None
    assert prov.method == method
    assert prov.seed == 7
    assert prov.mergekit_version == mergekit_version()
    parents = {fp for fp, _, _ in prov.parents}
    expected = {resolve(family.a).fingerprint, resolve(family.b).fingerprint}
    if method not in ("linear", "slerp"):
        expected.add(resolve(family.base).fingerprint)
    assert parents == expected
    assert prov.config["merge_method"] == method
    # The merge's own parameters are recorded, and the summary names the parents.
    for key, value in (config.get("parameters") or {}).items():
        assert prov.parameters[key] == value
    assert "parent-a" in prov.summary() and "parent-b" in prov.summary()
    # The folder says how it was made too.
    on_disk = json.loads((result.output_path / "mergeval-merge.json").read_text())
    assert on_disk["fingerprint"] == result.fingerprint and on_disk["method"] == method


def test_linear_merge_is_the_weighted_average(family, tmp_path):
    result = merge(_configs(family)["linear"], tmp_path / "lin", store=None)
    merged, a, b = _weights(result.output_path), _weights(family.a), _weights(family.b)
    assert merged.keys() == a.keys()
    for name in a:
        torch.testing.assert_close(merged[name], 0.25 * a[name] + 0.75 * b[name], rtol=1e-5, atol=1e-6)


def test_dare_depends_on_the_seed_and_only_on_it(family, tmp_path):
    config = _configs(family)["dare_ties"]
    first = merge(config, tmp_path / "s1", store=None, seed=1)
    again = merge(config, tmp_path / "s1-again", store=None, seed=1)
    other = merge(config, tmp_path / "s2", store=None, seed=2)
    assert first.fingerprint == again.fingerprint
    assert first.fingerprint != other.fingerprint
    # The recipe key says the same without merging: seed matters for DARE, not for linear.
    assert load_recipe(config, seed=1).key != load_recipe(config, seed=2).key
    linear = _configs(family)["linear"]
    assert load_recipe(linear, seed=1).key == load_recipe(linear, seed=2).key


def test_recipe_key_follows_the_parents_content_not_their_paths(family, tmp_path):
    import shutil

    moved = tmp_path / "elsewhere" / "parent-a"
    shutil.copytree(family.a, moved)
    config = _configs(family)["linear"]
    config_moved = json.loads(json.dumps(config).replace(str(family.a), str(moved)))
    assert load_recipe(config).key == load_recipe(config_moved).key
    config_changed = json.loads(json.dumps(config).replace("0.25", "0.3"))
    assert load_recipe(config).key != load_recipe(config_changed).key


@pytest.mark.parametrize("method", ["linear", "dare_ties"])
def test_in_memory_merge_equals_the_disk_merge(family, tmp_path, method):
    config = _configs(family)[method]
    on_disk = merge(config, tmp_path / "disk", store=None, seed=3)
    in_memory = merge_in_memory(config, seed=3)
    assert in_memory.output_path is None
    model = in_memory.model.model_object
    disk_weights = _weights(on_disk.output_path)
    state = model.state_dict()
    for name, tensor in disk_weights.items():
        torch.testing.assert_close(state[name], tensor, rtol=0, atol=0)
    # Its identity comes from the recipe, and its tokenizer from the donor parent.
    assert in_memory.model.fingerprint.startswith("merge-")
    assert in_memory.model.path in (family.a, family.base)
    with torch.no_grad():
        logits = model(torch.tensor([[1, 2, 3]])).logits
    assert torch.isfinite(logits).all()


def test_relative_model_paths_resolve_next_to_the_config(family, tmp_path):
    import shutil

    folder = tmp_path / "project"
    folder.mkdir()
    for src in (family.a, family.b):
        shutil.copytree(src, folder / src.name)
    config_file = folder / "merge.yml"
    config_file.write_text(
        "merge_method: linear\ndtype: float32\nmodels:\n"
        "  - {model: ./parent-a, parameters: {weight: 0.5}}\n"
        "  - {model: ./parent-b, parameters: {weight: 0.5}}\n"
    )
    recipe = load_recipe(config_file)
    assert {ref.name for ref in recipe.parents.values()} == {"parent-a", "parent-b"}
    assert recipe.parameters == {"weight[parent-a]": 0.5, "weight[parent-b]": 0.5}
