"""Offline mirrors: pull a suite's datasets from the Hugging Face hub into a folder in hub layout.

For clusters whose compute nodes have no internet: run `mergeval data pull --suite leaderboard-v1 --to DIR`
on a login node, then `mergeval eval ... --data-dir DIR` (or MERGEVAL_DATA_DIR=DIR) on the compute nodes.
Every task whose `dataset_path` is `<org>/<name>` reads `DIR/<org>/<name>` when that folder exists.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from mergeval.errors import UserError
from mergeval.suites import load_suite

# Extra hub files some checks read, beyond the lm-eval suites' datasets.
EXTRA_DATASETS: dict[str, list[str]] = {}


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")


def pull_dataset(repo_id: str, to: Path) -> Path:
    """Download one hub dataset (all files) into `to/<repo_id>`; returns that folder."""
    from huggingface_hub import snapshot_download

    if _offline():
        raise UserError(
            "HF_HUB_OFFLINE is set, so nothing can be downloaded. Unset it on a machine with internet access "
            "and pull there, then copy the folder to this machine."
        )
    target = to / repo_id
    try:
        snapshot_download(repo_id, repo_type="dataset", local_dir=target, etag_timeout=10)
    except Exception as exc:  # connection, DNS, auth and 404 errors all end here
        raise UserError(
            f"Could not download {repo_id} from the Hugging Face hub ({type(exc).__name__}: {str(exc)[:200]}). "
            "Check the network (this command needs internet access) and, for gated datasets, HF_TOKEN."
        ) from exc
    return target


def pull_suite(suite: str, to: str | Path, *, on_dataset: Callable[[str], None] | None = None) -> list[Path]:
    """Pull every dataset a suite reads into `to`, in the layout `--data-dir` expects."""
    suite_obj = load_suite(suite)
    if not suite_obj.datasets:
        raise UserError(f"Suite {suite_obj.name} ships its data with mergeval; there is nothing to pull.")
    root = Path(to).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    pulled = []
    for repo_id in suite_obj.datasets:
        if on_dataset:
            on_dataset(repo_id)
        pulled.append(pull_dataset(repo_id, root))
    return pulled
