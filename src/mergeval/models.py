"""Model references: what a user can point mergeval at, what it resolves to, and its fingerprint.

A reference is one of
  - a local Hugging Face folder (config.json + weights + tokenizer),
  - a hub id with an optional revision, `org/name@rev` (downloaded once into the HF cache),
  - a GGUF file, converted once (dequantised) into a cached model folder,
  - an OpenAI-compatible endpoint, `openai:<model>@<base_url>` (for chat checks and judges only).

The **fingerprint** says what a model *is*: it stays the same when a folder is moved or renamed and changes
when any weight, config or tokenizer file changes. See `fingerprint_folder` for what is hashed and why.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mergeval.errors import UserError

# Files that define a model's behaviour. Anything else in the folder (README, logs, .git) is ignored.
_CONFIG_FILES = {
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "tokenizer.model",
    "vocab.json",
    "merges.txt",
    "chat_template.jinja",
    "chat_template.json",
}
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")
# Files up to this size are hashed whole; larger weight files are hashed by header + size + sampled blocks.
FULL_HASH_LIMIT = 64 * 1024 * 1024
_SAMPLE_BLOCKS = 64
_BLOCK_SIZE = 64 * 1024

FINGERPRINT_SCHEME = "mergeval-fp-v1"


def cache_dir() -> Path:
    """Where mergeval keeps converted models and other derived files (MERGEVAL_CACHE overrides)."""
    root = os.environ.get("MERGEVAL_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "mergeval"
    )
    return Path(root)


def _hash_file(path: Path, digest: hashlib._Hash) -> None:
    size = path.stat().st_size
    digest.update(struct.pack("<Q", size))
    with path.open("rb") as fh:
        if size <= FULL_HASH_LIMIT:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
            return
        if path.suffix == ".safetensors":
            # The header lists every tensor's name, dtype, shape and offsets: hash it whole.
            (header_len,) = struct.unpack("<Q", fh.read(8))
            digest.update(fh.read(header_len))
        # Evenly spaced blocks across the file, always including the first and the last.
        span = max(size - _BLOCK_SIZE, 0)
        for i in range(_SAMPLE_BLOCKS):
            fh.seek(span * i // (_SAMPLE_BLOCKS - 1))
            digest.update(fh.read(_BLOCK_SIZE))


def fingerprint_folder(folder: str | Path) -> str:
    """A content fingerprint of a model folder.

    Hashed: the relative names and bytes of config and tokenizer files, and of every weight file
    (*.safetensors, *.bin, *.pt). Weight files up to 64 MiB are hashed whole. Larger ones are hashed by their
    size, their full safetensors header (tensor names, dtypes, shapes, offsets) and 64 evenly spaced 64 KiB
    blocks: about 4 MiB read per shard, so a 15 GB checkpoint fingerprints in well under a second from a
    warm disk. A change confined to bytes between sampled blocks of a large shard with identical size and
    header would go unnoticed; merges rewrite every tensor, so in practice any re-merge changes the sampled
    bytes. Paths, timestamps and file order do not enter the hash, so moving or renaming the folder keeps it.
    """
    folder = Path(folder)
    digest = hashlib.sha256(FINGERPRINT_SCHEME.encode())
    files = sorted(
        p for p in folder.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
        and (p.name in _CONFIG_FILES or p.suffix in _WEIGHT_SUFFIXES or p.name.endswith(".safetensors.index.json"))
    )
    if not files:
        raise UserError(f"{folder} has no model files (config.json, *.safetensors). Point at a model folder.")
    for path in files:
        rel = path.relative_to(folder).as_posix()
        digest.update(b"\0" + rel.encode() + b"\0")
        _hash_file(path, digest)
    return digest.hexdigest()[:24]


def fingerprint_text(*parts: str) -> str:
    return hashlib.sha256("\0".join((FINGERPRINT_SCHEME, *parts)).encode()).hexdigest()[:24]


@dataclass
class ModelRef:
    """A resolved model: where its files are (or its endpoint), its identity, and how to load it."""

    reference: str  # what the user wrote
    kind: str  # "local" | "hub" | "gguf" | "endpoint" | "in-memory"
    name: str  # display name (plan key, folder name, hub id)
    path: Path | None = None  # local folder with config + weights (None for endpoints)
    fingerprint: str = ""
    revision: str | None = None
    base_url: str | None = None  # endpoints
    endpoint_model: str | None = None
    api_key_env: str | None = None
    dtype: str = "auto"
    device: str | None = None
    batch_size: int = 8
    trust_remote_code: bool = False
    metadata: dict[str, Any] = field(default_factory=dict)
    model_object: Any = None  # an already-loaded model (merge lab); never stored

    @property
    def is_local(self) -> bool:
        return self.path is not None

    def describe(self) -> dict[str, Any]:
        """What the store keeps about this model (no secrets: only the *name* of an API key variable)."""
        out = {"kind": self.kind, "reference": self.reference, "name": self.name}
        for key in ("revision", "base_url", "endpoint_model", "api_key_env"):
            if getattr(self, key):
                out[key] = getattr(self, key)
        out.update(self.metadata)
        return out


def _read_config(folder: Path) -> dict[str, Any]:
    cfg_path = folder / "config.json"
    if not cfg_path.exists():
        raise UserError(
            f"{folder} has no config.json, so it is not a Hugging Face model folder. Point at the folder that "
            "contains config.json and the weights (e.g. mergekit's output directory)."
        )
    try:
        return json.loads(cfg_path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"Cannot read {cfg_path}: {exc}. Fix or re-export the model's config.json.") from exc


def check_causal_lm(folder: Path, config: dict[str, Any]) -> None:
    """Raise a UserError unless the config describes a causal (decoder-only) language model."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    archs = config.get("architectures") or []
    model_type = config.get("model_type")
    if any(a.endswith("ForCausalLM") or a.endswith("LMHeadModel") for a in archs):
        return
    if model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES and not archs:
        return
    raise UserError(
        f"{folder} is a {', '.join(archs) or model_type or 'unknown'} model, not a causal language model. "
        "mergeval evaluates decoder-only LMs (architectures ending in ForCausalLM)."
    )


def _resolve_hub(reference: str, revision: str | None) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, RepositoryNotFoundError

    patterns = ["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja", "*.tiktoken", "*.py"]
    try:
        return Path(snapshot_download(reference, revision=revision, allow_patterns=patterns))
    except RepositoryNotFoundError as exc:
        raise UserError(
            f"{reference!r} is neither a local folder nor a model on the Hugging Face hub. Check the path or id."
        ) from exc
    except (LocalEntryNotFoundError, HfHubHTTPError, OSError) as exc:
        raise UserError(
            f"Could not fetch {reference!r} from the Hugging Face hub and it is not in the local cache ({exc}). "
            "On a machine without internet, download it elsewhere (huggingface-cli download) and pass the "
            "local folder instead."
        ) from exc


def _convert_gguf(gguf_path: Path) -> Path:
    """Dequantise a GGUF file into a normal model folder, once; later calls reuse the cached folder."""
    import hashlib as _h

    stat = gguf_path.stat()
    digest = _h.sha256()
    with gguf_path.open("rb") as fh:  # cheap identity: size + head + tail of the file
        digest.update(struct.pack("<Q", stat.st_size))
        digest.update(fh.read(1 << 20))
        fh.seek(max(stat.st_size - (1 << 20), 0))
        digest.update(fh.read())
    out = cache_dir() / "gguf" / f"{gguf_path.stem}-{digest.hexdigest()[:16]}"
    if (out / ".complete").exists():
        return out
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        model = AutoModelForCausalLM.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
        tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    except Exception as exc:  # transformers raises many types for unsupported GGUF files
        raise UserError(
            f"transformers could not load the GGUF file {gguf_path} ({exc}). Only architectures and quant types "
            "that transformers' GGUF loader supports can be used; otherwise convert the model to safetensors."
        ) from exc
    # The weights are dequantised in memory; save them as a plain (unquantised) model folder.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    tmp = out.with_name(out.name + ".partial")
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    if out.exists():
        import shutil

        shutil.rmtree(out)
    tmp.rename(out)
    (out / ".complete").write_text(str(gguf_path))
    return out


def parse_endpoint(reference: str) -> tuple[str, str]:
    """`openai:<model>@<base_url>` -> (model, base_url)."""
    body = reference.removeprefix("openai:")
    if "@" not in body:
        raise UserError(
            f"Endpoint reference {reference!r} needs a base URL: write openai:<model>@http://host:port/v1."
        )
    model, base_url = body.rsplit("@", 1)
    return model, base_url


def resolve(
    reference: str | os.PathLike,
    *,
    name: str | None = None,
    revision: str | None = None,
    dtype: str = "auto",
    device: str | None = None,
    batch_size: int = 8,
    trust_remote_code: bool = False,
    api_key_env: str | None = None,
) -> ModelRef:
    """Turn what the user wrote into a ModelRef with a fingerprint, or raise a UserError saying why not."""
    ref = os.fspath(reference)
    common = dict(dtype=dtype, device=device, batch_size=batch_size, trust_remote_code=trust_remote_code)

    if ref.startswith("openai:"):
        model, base_url = parse_endpoint(ref)
        return ModelRef(
            reference=ref, kind="endpoint", name=name or model, base_url=base_url, endpoint_model=model,
            api_key_env=api_key_env, fingerprint="ep-" + fingerprint_text(base_url.rstrip("/"), model), **common,
        )

    path = Path(ref).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise UserError(f"GGUF file {path} does not exist. Check the path.")
        folder = _convert_gguf(path.resolve())
        config = _read_config(folder)
        check_causal_lm(folder, config)
        return ModelRef(
            reference=ref, kind="gguf", name=name or path.stem, path=folder,
            fingerprint=fingerprint_folder(folder), metadata={"gguf_file": path.name,
                                                             "model_type": config.get("model_type")}, **common,
        )

    if path.exists():
        if not path.is_dir():
            raise UserError(f"{path} is a file; point at the model folder that contains config.json.")
        config = _read_config(path)
        check_causal_lm(path, config)
        return ModelRef(
            reference=ref, kind="local", name=name or path.resolve().name, path=path.resolve(),
            fingerprint=fingerprint_folder(path), metadata={"model_type": config.get("model_type")}, **common,
        )

    looks_local = ref.startswith((".", "/", "~")) or os.sep in ref.strip("/").split("/", 1)[-1] or ref.count("/") != 1
    repo, _, rev = ref.partition("@")
    if looks_local and "@" not in ref:
        raise UserError(
            f"Model path {ref} does not exist. Check the path, or use a hub id like org/name[@revision]."
        )
    folder = _resolve_hub(repo, rev or revision)
    config = _read_config(folder)
    check_causal_lm(folder, config)
    return ModelRef(
        reference=ref, kind="hub", name=name or repo, path=folder, revision=rev or revision,
        fingerprint=fingerprint_folder(folder), metadata={"model_type": config.get("model_type")}, **common,
    )


def chat_template_hash(folder: Path | None) -> str | None:
    """Hash of the model's chat template (provenance for chat checks), None if it has none."""
    if folder is None:
        return None
    texts = []
    jinja = folder / "chat_template.jinja"
    if jinja.exists():
        texts.append(jinja.read_text())
    cfg = folder / "tokenizer_config.json"
    if cfg.exists():
        try:
            tpl = json.loads(cfg.read_text()).get("chat_template")
        except json.JSONDecodeError:
            tpl = None
        if tpl:
            texts.append(json.dumps(tpl, sort_keys=True))
    return hashlib.sha256("\n".join(texts).encode()).hexdigest()[:16] if texts else None


def torch_dtype(dtype: str):
    """'auto' | 'float32' | 'bfloat16' | 'float16' -> a torch dtype (or 'auto')."""
    if dtype in (None, "auto"):
        return "auto"
    import torch

    names = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
             "float16": torch.float16, "fp16": torch.float16}
    if dtype not in names:
        raise UserError(f"Unknown dtype {dtype!r}. Use one of: auto, float32, bfloat16, float16.")
    return names[dtype]


def load_hf(ref: ModelRef):
    """Load (model, tokenizer) of a local or hub ModelRef with transformers."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if ref.model_object is not None:
        tok = AutoTokenizer.from_pretrained(ref.path, trust_remote_code=ref.trust_remote_code)
        return ref.model_object, tok
    if ref.path is None:
        raise UserError(f"{ref.name} is an endpoint; it cannot be loaded as a local model.")
    model = AutoModelForCausalLM.from_pretrained(
        ref.path, dtype=torch_dtype(ref.dtype), trust_remote_code=ref.trust_remote_code
    )
    if ref.device:
        model.to(ref.device)
    model.eval()
    tok = AutoTokenizer.from_pretrained(ref.path, trust_remote_code=ref.trust_remote_code)
    return model, tok
