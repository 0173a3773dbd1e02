"""Where perplexity text comes from: the bundled corpus, a user's files, or wikitext from the hub.

A corpus is a list of documents. Each document is one stored item, so merged and parent models can be
compared document by document. The corpus identity (part of the check hash) is the hash of the documents'
ids and text, so moving or renaming a file keeps it and editing a single character changes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mergeval.core.identity import content_hash
from mergeval.engines.lmeval.harness import resolve_data_dir
from mergeval.engines.text._common import bundled_file, item_id_for, read_jsonl, unique_ids
from mergeval.errors import UserError

BUNDLED = "bundled"
WIKITEXT = "wikitext"
TEXT_SUFFIXES = (".txt", ".md")
JSONL_SUFFIX = ".jsonl"

# lm-eval's own wikitext task reads this document-level copy of wikitext-2 (one row per article) and
# detokenises it; we read the same rows the same way, so word perplexity and bits per byte match that
# task's numbers at the same max length.
WIKITEXT_DATASET = "EleutherAI/wikitext_document_level"
WIKITEXT_CONFIG = "wikitext-2-raw-v1"
WIKITEXT_SPLIT = "test"


@dataclass(frozen=True)
class Document:
    """One item of a perplexity check.

    `text` is what the model scores. `count_text` is what its words and bytes are counted on: the same
    text, except for wikitext, whose word and byte counts lm-eval takes from the raw article before
    detokenisation (kept that way for parity with lm-eval's numbers).
    """

    id: str
    text: str
    count_text: str | None = None

    @property
    def normaliser_text(self) -> str:
        return self.text if self.count_text is None else self.count_text


@dataclass(frozen=True)
class Corpus:
    label: str  # short name for tables and the check name: "bundled", "wikitext", a file name
    source: str  # where it was read from (provenance, never identity)
    identity: dict[str, Any]
    documents: tuple[Document, ...]


def _documents_from_jsonl(path: Path, prefix: str = "") -> list[Document]:
    docs = []
    # Empty texts are allowed (datasets exported to JSONL often have some) and left out later.
    for line_no, obj in read_jsonl(path, required=(), what="text"):
        if not isinstance(obj.get("text"), str):
            raise UserError(f'{path}:{line_no} has no "text" string. Each line of a text file needs one.')
        docs.append(Document(prefix + item_id_for(obj, line_no), obj["text"]))
    unique_ids([d.id for d in docs], path)
    return docs


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(
            f"{path} is not UTF-8 text ({exc.reason}). Convert it to UTF-8 or leave it out."
        ) from exc


def _documents_from_folder(folder: Path) -> list[Document]:
    files = sorted(
        p
        for p in folder.rglob("*")
        if p.is_file()
        and p.suffix in (*TEXT_SUFFIXES, JSONL_SUFFIX)
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )
    if not files:
        raise UserError(f"{folder} holds no .txt, .md or .jsonl files. Put the text to score in such files.")
    docs: list[Document] = []
    for path in files:
        rel = path.relative_to(folder).as_posix()
        if path.suffix == JSONL_SUFFIX:
            docs += _documents_from_jsonl(path, prefix=f"{rel}:")
        else:
            docs.append(Document(rel, _read_text(path)))
    return docs


def _wikitext() -> tuple[list[Document], str]:
    """wikitext-2 test articles, from a local mirror ($MERGEVAL_DATA_DIR/<org>/<name>) or the hub."""
    import datasets
    from lm_eval.tasks.wikitext.preprocess_wikitext import wikitext_detokenizer

    mirror = resolve_data_dir(None)
    location = WIKITEXT_DATASET
    if mirror is not None and (mirror / WIKITEXT_DATASET).is_dir():
        location = str(mirror / WIKITEXT_DATASET)
    try:
        rows = datasets.load_dataset(location, WIKITEXT_CONFIG, split=WIKITEXT_SPLIT)
    except Exception as exc:  # offline, DNS, missing config: datasets raises many types
        raise UserError(
            f"Could not load {WIKITEXT_DATASET} ({WIKITEXT_CONFIG}, {WIKITEXT_SPLIT}) for wikitext "
            f"perplexity ({type(exc).__name__}: {str(exc)[:200]}). Without network access, download it "
            f"elsewhere (`huggingface-cli download --repo-type dataset {WIKITEXT_DATASET} --local-dir "
            f"DIR/{WIKITEXT_DATASET}`) and set MERGEVAL_DATA_DIR=DIR, or pass your own text with --text PATH."
        ) from exc
    docs = [Document(str(i), wikitext_detokenizer(row), count_text=row["page"]) for i, row in enumerate(rows)]
    return docs, location


def wikitext_identity() -> dict[str, Any]:
    """wikitext's identity is its name, so results can be read back (compared, reported) offline."""
    return {
        "kind": "hub",
        "dataset": WIKITEXT_DATASET,
        "config": WIKITEXT_CONFIG,
        "split": WIKITEXT_SPLIT,
        "preprocess": "lm-eval wikitext_detokenizer",
    }


def corpus_identity(text: str | None) -> dict[str, Any]:
    """The identity of a corpus without downloading anything (local files are read and hashed)."""
    return wikitext_identity() if text == WIKITEXT else load_corpus(text).identity


def load_corpus(text: str | None) -> Corpus:
    """`text`: None (the bundled corpus), "wikitext", or a .txt/.md/.jsonl file or a folder of them."""
    if text is None or text == BUNDLED:
        path = bundled_file("corpus.jsonl")
        docs, label, source, kind = _documents_from_jsonl(path), BUNDLED, str(path), "bundled"
    elif text == WIKITEXT:
        docs, source = _wikitext()
        label, kind = WIKITEXT, "hub"
    else:
        path = Path(text).expanduser()
        if path.is_dir():
            docs = _documents_from_folder(path)
        elif path.is_file() and path.suffix == JSONL_SUFFIX:
            docs = _documents_from_jsonl(path)
        elif path.is_file() and path.suffix in TEXT_SUFFIXES:
            docs = [Document(path.name, _read_text(path))]
        elif path.is_file():
            raise UserError(
                f"{path} is a {path.suffix or 'suffix-less'} file. Pass .txt, .md, .jsonl or a folder."
            )
        else:
            raise UserError(f"Text {text!r} is neither a file, a folder nor 'wikitext'. Check the path.")
        label, source, kind = path.name, str(path.resolve()), "files"
    # Whitespace-only documents have nothing to predict; leaving them out keeps every item meaningful.
    docs = [d for d in docs if d.text.strip()]
    if not docs:
        raise UserError(f"The text in {source} is empty. Point --text at files with some text in them.")
    if kind == "hub":
        identity = wikitext_identity()
    else:
        identity = {
            "kind": "text",
            "content_sha": content_hash([[d.id, d.text] for d in docs]),
            "n_documents": len(docs),
        }
    return Corpus(label=label, source=source, identity=identity, documents=tuple(docs))
