"""The store fixture of tests/fixtures/store_v1, copied into a test's folder.

The three model folders are committed as `make_store.py` saved them (transformers 5.24.0), not rebuilt: a model's
fingerprint hashes its config files as bytes, and config.json records the transformers version that saved it, so
the same seeded weights saved by another transformers release are another model, with no rows in the store."""

from __future__ import annotations

import shutil
from pathlib import Path

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "store_v1"


def copy_store_v1(root: Path) -> Path:
    """Copy the plan, its data files, the store and the three models into `root`; return the plan's path."""
    root.mkdir(parents=True, exist_ok=True)
    for f in FIXTURE.iterdir():
        if f.suffix in (".yaml", ".jsonl", ".db"):
            shutil.copy(f, root / f.name)
    shutil.copytree(FIXTURE / "models", root / "models")
    return root / "plan.yaml"
