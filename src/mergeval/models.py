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
import re
import struct
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

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
    check_weight_files(folder, files)
    for path in files:
        rel = path.relative_to(folder).as_posix()
        digest.update(b"\0" + rel.encode() + b"\0")
        _hash_file(path, digest)
    return digest.hexdigest()[:24]


def check_safetensors(path: Path) -> None:
    """Raise a UserError when a .safetensors file is truncated or its header is not valid (checked with
    safetensors' own reader, which maps the file and parses only the header)."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="numpy") as fh:
            fh.keys()
    except (SafetensorError, OSError, ValueError) as exc:
        detail = str(exc).removeprefix("Error while deserializing header: ")
        raise UserError(
            f"The weights file {path} is damaged or incomplete ({detail}), e.g. a truncated download or an "
            "interrupted save. Download or save the model again."
        ) from None


def check_weight_files(folder: Path, files: list[Path]) -> None:
    """Every safetensors shard is readable, and every shard a `*.safetensors.index.json` names exists."""
    for path in files:
        if path.suffix == ".safetensors":
            check_safetensors(path)
        elif path.name.endswith(".safetensors.index.json"):
            try:
                shards = set(json.loads(path.read_text(encoding="utf-8"))["weight_map"].values())
            except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
                raise UserError(
                    f"{path} is not a valid safetensors index ({type(exc).__name__}: {exc}). Save the model again."
                ) from None
            missing = sorted(str(s) for s in shards if not (path.parent / str(s)).is_file())
            if missing:
                raise UserError(
                    f"{folder} lacks the weight shard(s) {', '.join(missing[:3])} listed in {path.name}. "
                    "Download or save the model again."
                )


_TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "vocab.txt", "spiece.model")


def check_tokenizer_files(folder: Path, *, trust_remote_code: bool = False) -> None:
    """Raise a UserError when a model folder has no tokenizer (mergeval tokenizes for every check)."""
    if trust_remote_code and (folder / "tokenizer_config.json").exists():
        return  # a custom tokenizer class may keep its vocabulary anywhere
    if any((folder / name).is_file() for name in _TOKENIZER_FILES) or any(folder.glob("*.tiktoken")):
        return
    raise UserError(
        f"{folder} has no tokenizer files ({', '.join(_TOKENIZER_FILES[:3])}). Copy the tokenizer files of the "
        "model it was made from into the folder (mergekit copies them unless run with --no-copy-tokenizer)."
    )


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
    # how another process rebuilds an in-memory merge ({"config": mergekit config, "seed": ...}; a Ray worker
    # merges it again from the same parents: mergeval.merge.inmemory.rebuild)
    recipe: dict[str, Any] | None = None

    @property
    def is_local(self) -> bool:
        return self.path is not None

    def to_json(self) -> dict[str, Any]:
        """Everything but the loaded model object, as JSON data (work units travel to other processes)."""
        if self.model_object is not None and self.recipe is None:
            raise UserError(
                f"{self.name} is a model object in this process, which cannot be sent to another process. Save it "
                "to a folder (model.save_pretrained) and evaluate the folder, or use the local executor."
            )
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "model_object"}
        out["path"] = None if self.path is None else str(self.path)
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ModelRef:
        values = dict(data)
        values["path"] = None if values.get("path") is None else Path(values["path"])
        return cls(**values)

    def describe(self) -> dict[str, Any]:
        """What the store keeps about this model (no secrets: only the *name* of an API key variable)."""
        out = {"kind": self.kind, "reference": self.reference, "name": self.name}
        for key in ("revision", "base_url", "endpoint_model", "api_key_env"):
            if getattr(self, key):
                out[key] = getattr(self, key)
        out.update(self.metadata)
        if self.path is not None or self.model_object is not None:
            from mergeval.dtypes import resolved_dtype

            # what `dtype: auto` loads it in: check identities use it, also once the folder is gone
            auto = resolved_dtype(self, "auto")
            if auto != "auto":
                out["auto_dtype"] = auto
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
    if any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in archs):
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


GGUF_MAGIC = b"GGUF"


def is_gguf(path: Path) -> bool:
    """Whether `path` is a file that starts with GGUF's magic bytes."""
    try:
        with path.open("rb") as fh:
            return fh.read(4) == GGUF_MAGIC
    except OSError:
        return False


def save_gguf_as_folder(gguf_path: Path, out: Path) -> None:
    """Load a GGUF file with transformers (dequantised) and save it as a plain model folder (safetensors,
    config, tokenizer) in `out`: what mergekit, lm-eval and transformers load like any other model."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        model = AutoModelForCausalLM.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
        tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    except Exception as exc:  # transformers raises many types for unsupported GGUF files
        raise UserError(
            f"transformers could not load the GGUF file {gguf_path} ({exc}). Only architectures and quant types "
            "that transformers' GGUF loader supports can be used; otherwise convert the model to safetensors."
        ) from exc
    # The weights are dequantised in memory; transformers refuses to save a model that still carries its
    # GGUF quantizer, so save them as a plain (unquantised) model.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


def convert_gguf(gguf_path: str | os.PathLike, out: str | os.PathLike, *, on_start: Any = None) -> Path:
    """`mergeval convert`: write a GGUF model as a plain model folder `out` (new, or an empty folder).

    The arguments are checked first, then `on_start()` is called (if given) and the model is converted. The
    folder appears complete or not at all: it is written beside `out` and renamed into place."""
    import shutil

    gguf_path, out = Path(gguf_path).expanduser(), Path(out).expanduser()
    if not gguf_path.is_file():
        raise UserError(f"GGUF file {gguf_path} does not exist. Check the path.")
    if not is_gguf(gguf_path):
        raise UserError(f"{gguf_path} is not a GGUF file (it does not start with the bytes 'GGUF'); pass a .gguf "
                        "model file.")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"{out} already exists and is not an empty folder; pass a new folder with --out.")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.parent / f".{out.name}.partial-{os.getpid()}"
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
    except OSError as exc:
        raise UserError(f"Cannot create the folder {out} ({exc.strerror or exc}); pass a writable --out.") from exc
    if on_start is not None:
        on_start()
    try:
        save_gguf_as_folder(gguf_path.resolve(), tmp)
        if out.exists():
            out.rmdir()  # empty (checked above)
        tmp.rename(out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out


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
    tmp = out.with_name(out.name + ".partial")
    save_gguf_as_folder(gguf_path, tmp)
    if out.exists():
        import shutil

        shutil.rmtree(out)
    tmp.rename(out)
    (out / ".complete").write_text(str(gguf_path))
    return out


_ENDPOINT_REFERENCE = re.compile(r"^(?P<model>.+?)@(?P<url>[A-Za-z][A-Za-z0-9+.\-]*://.*)$", re.DOTALL)


def url_without_userinfo(url: str) -> str:
    """`url` with any user:password@ removed (what may be shown, stored or hashed)."""
    if "://" not in url:
        return url.rpartition("@")[2]
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def check_base_url(url: str, what: str = "endpoint") -> str:
    """`url` when it is an http(s) URL with a host and no credentials in it; else a UserError that never
    shows the credentials (keys are only read from environment variables)."""
    shown = url_without_userinfo(url)
    if "://" not in url:
        raise UserError(f"The {what} URL {shown!r} has no scheme: write http://{shown} (or https://...).")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise UserError(f"The {what} URL {shown!r} is not a valid URL ({exc}).") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise UserError(f"The {what} URL {shown!r} must start with http:// or https://.")
    if "@" in parts.netloc:
        raise UserError(
            f"The {what} URL {shown!r} carries credentials (user:password@ before the host); mergeval does not "
            "take keys in URLs, because URLs are stored and printed. Put the key in an environment variable "
            "and give its name (--judge-key-env, or api_key_env in a plan), with the URL without them."
        )
    if not parts.hostname:
        raise UserError(f"The {what} URL {shown!r} has no host: write e.g. http://127.0.0.1:8000/v1.")
    return url


def parse_endpoint(reference: str) -> tuple[str, str]:
    """`openai:<model>@<base_url>` -> (model, base_url). The URL is split off at the first "@" followed by
    a scheme (so credentials in it are recognised, and refused by check_base_url, never stored)."""
    body = reference.removeprefix("openai:")
    match = _ENDPOINT_REFERENCE.match(body)
    if match is None:
        if "@" not in body:
            raise UserError(
                f"Endpoint reference {reference!r} needs a base URL: write openai:<model>@http://host:port/v1."
            )
        url = body.rpartition("@")[2]
        raise UserError(
            f"The endpoint URL {url!r} (in openai:<model>@<url>) has no scheme: write "
            f"openai:<model>@http://{url} (or https://...)."
        )
    model, base_url = match.group("model"), match.group("url")
    return model, check_base_url(base_url)


def _checked_config(folder: Path, trust_remote_code: bool) -> dict[str, Any]:
    """The model folder's config.json, after checking that it is a causal LM with tokenizer files."""
    config = _read_config(folder)
    check_causal_lm(folder, config)
    check_tokenizer_files(folder, trust_remote_code=trust_remote_code)
    return config


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
    common = {"dtype": dtype, "device": device, "batch_size": batch_size, "trust_remote_code": trust_remote_code}

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
        config = _checked_config(folder, trust_remote_code)
        return ModelRef(
            reference=ref, kind="gguf", name=name or path.stem, path=folder,
            fingerprint=fingerprint_folder(folder), metadata={"gguf_file": path.name,
                                                             "model_type": config.get("model_type")}, **common,
        )

    if path.exists():
        if not path.is_dir():
            raise UserError(f"{path} is a file; point at the model folder that contains config.json.")
        config = _checked_config(path, trust_remote_code)
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
    config = _checked_config(folder, trust_remote_code)
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


DTYPES = ("auto", "float32", "bfloat16", "float16")
_DTYPE_SPELLINGS = {"fp32": "float32", "float": "float32", "bf16": "bfloat16", "fp16": "float16",
                    "half": "float16"}
BACKENDS = ("mergeval-hf", "hf")


def dtype_problem(dtype: Any) -> str | None:
    """What is wrong with a dtype setting (None: nothing). Checked before anything is loaded or stored."""
    if dtype is None or dtype in DTYPES:
        return None
    hint = _DTYPE_SPELLINGS.get(str(dtype).lower())
    return f"unknown dtype {dtype!r}{f' (write {hint})' if hint else ''}; use one of: {', '.join(DTYPES)}"


def device_problem(device: Any) -> str | None:
    """What is wrong with a device setting's spelling (None: nothing); `device_unavailable` checks the machine."""
    if device is None:
        return None
    kind, _, index = str(device).partition(":")
    if kind in ("cpu", "mps") and not index or kind in ("cuda", "xpu") and (not index or index.isdigit()):
        return None
    return f"unknown device {device!r}; use cpu, cuda, cuda:N or mps (or leave it out for the best available)"


def backend_problem(backend: Any) -> str | None:
    """What is wrong with a backend setting (None: nothing): mergeval-hf, hf or another lm-eval model type."""
    if backend is None or backend in BACKENDS:
        return None
    import lm_eval.models  # noqa: F401  registers lm-eval's model types (lazily; fast)
    from lm_eval.api.registry import model_registry

    if str(backend) in set(model_registry.keys()):
        return None
    return f"unknown backend {backend!r}; use {' or '.join(BACKENDS)} (mergeval-hf is the default)"


def device_unavailable(device: str | None) -> str | None:
    """Why `device` cannot be used on this machine (None: it can, or it is left to the default)."""
    if device is None or device == "cpu":
        return None
    import torch

    kind, _, index = device.partition(":")
    if kind == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if int(index or 0) >= count:
            return f"device {device} is not available here ({count} CUDA device(s) visible); use cpu or leave it unset"
    elif kind == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        return "device mps is not available here; use cpu or leave it unset"
    elif kind == "xpu" and not (hasattr(torch, "xpu") and torch.xpu.is_available()):
        return f"device {device} is not available here; use cpu or leave it unset"
    return None


def check_run_settings(*, dtype: Any = None, device: Any = None, backend: Any = None,
                       available: bool = True) -> None:
    """Raise a UserError for a dtype, device or backend mergeval cannot use (with `available`, a device this
    machine does not have too), before any model is resolved or anything is stored."""
    for problem in (dtype_problem(dtype), device_problem(device), backend_problem(backend),
                    device_unavailable(device) if available and device_problem(device) is None else None):
        if problem:
            raise UserError(problem[0].upper() + problem[1:] + ".")


def load_hf(ref: ModelRef):
    """Load (model, tokenizer) of a local or hub ModelRef with transformers."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if ref.model_object is not None:
        tok = AutoTokenizer.from_pretrained(ref.path, trust_remote_code=ref.trust_remote_code)
        return ref.model_object, tok
    if ref.path is None:
        raise UserError(f"{ref.name} is an endpoint; it cannot be loaded as a local model.")
    try:
        model = AutoModelForCausalLM.from_pretrained(
            ref.path, dtype=torch_dtype(ref.dtype), trust_remote_code=ref.trust_remote_code
        )
        tok = AutoTokenizer.from_pretrained(ref.path, trust_remote_code=ref.trust_remote_code)
    except (OSError, ValueError) as exc:  # what transformers raises for missing or unreadable files
        detail = " ".join(str(exc).split())[:300]
        raise UserError(f"Could not load model {ref.name} from {ref.path} ({detail}). Check the model files.") from exc
    if ref.device:
        model.to(ref.device)
    model.eval()
    return model, tok
