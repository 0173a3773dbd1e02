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
from mergeval.suites.leaderboard_v2 import INSTALL_HINT, NLTK_DIR

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


def pull_suite(suite: str, to: str | Path, *, on_dataset: Callable[[str], None] | None = None,
               on_skip: Callable[[str], None] | None = None) -> list[Path]:
    """Pull every dataset a suite reads into `to`, in the layout `--data-dir` expects, and the nltk data its
    scoring code needs into `to/nltk_data`. A gated dataset (GPQA) that cannot be downloaded (terms not
    accepted, no HF_TOKEN) is skipped with the reason passed to `on_skip`; the suite then runs without it."""
    suite_obj = load_suite(suite)
    if not suite_obj.datasets:
        raise UserError(f"Suite {suite_obj.name} ships its data with mergeval; there is nothing to pull.")
    root = Path(to).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    gated = {b.gated_dataset: b for b in suite_obj.benchmarks if b.gated_dataset}
    pulled = []
    for repo_id in sorted(suite_obj.datasets, key=lambda r: r in gated):  # gated ones last
        if on_dataset:
            on_dataset(repo_id)
        try:
            pulled.append(pull_dataset(repo_id, root))
        except UserError as exc:
            if repo_id not in gated or _offline():
                raise
            if on_skip:
                on_skip(f"Skipped {repo_id}: it is gated on the hub ({exc}); accept its terms at "
                        f"https://huggingface.co/datasets/{repo_id} and set HF_TOKEN to include "
                        f"{gated[repo_id].display}.")
    for package in suite_obj.nltk_data:
        if on_dataset:
            on_dataset(f"nltk:{package}")
        pulled.append(pull_nltk(package, root))
    return pulled


def pull_nltk(package: str, to: Path) -> Path:
    """Download one nltk data package (e.g. punkt_tab, IFEval's tokenizer) into `to/nltk_data`."""
    try:
        import nltk
    except ImportError as exc:
        raise UserError(f"Pulling nltk data needs the nltk package; install it with: {INSTALL_HINT}") from exc

    target = to / NLTK_DIR
    try:
        ok = nltk.download(package, download_dir=str(target), quiet=True, raise_on_error=True)
    except Exception as exc:  # URL, HTTP and file errors
        raise UserError(f"Could not download the nltk data {package!r} ({type(exc).__name__}: {str(exc)[:200]}). "
                        "Check the network (this command needs internet access).") from exc
    if not ok:
        raise UserError(f"Could not download the nltk data {package!r}. Check the network (this command needs "
                        "internet access).")
    return target
