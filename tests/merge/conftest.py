"""Fixtures of the merge tests: a family of tiny random Llama models (a base and two parents) made once."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass
class Family:
    base: Path
    a: Path
    b: Path


def make_family(root: Path) -> Family:
    """A base and two 'fine-tunes' of it: the base plus a different small random delta each (so task
    arithmetic, TIES and DARE have real, distinct task vectors)."""
    import torch
    from transformers import AutoModelForCausalLM

    from mergeval.testing import make_tiny_llama

    base = make_tiny_llama(root / "base", seed=0)
    folders = {}
    for name, seed in (("parent-a", 1), ("parent-b", 2)):
        model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.05 * torch.randn(p.shape, generator=generator))
        folders[name] = make_tiny_llama(root / name, model=model)
    return Family(base=base, a=folders["parent-a"], b=folders["parent-b"])


@pytest.fixture(scope="session")
def family(tmp_path_factory) -> Family:
    return make_family(tmp_path_factory.mktemp("family"))
