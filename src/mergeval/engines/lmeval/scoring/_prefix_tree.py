"""A radix tree over token-id sequences: every distinct prefix appears in it exactly once.

Scoring a request means running the model over its input tokens. Many requests share long prefixes (the
few-shot context of one document under each of its answer choices, MMLU's fixed dev examples in front of
every question, TruthfulQA's preamble), so the tree's nodes are exactly the work that must be done: each
node's `tokens` are run once, on top of the KV cache of its ancestors. The number of tokens in the tree is
the ideal forward-token count for a set of requests.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field


@dataclass(eq=False)
class PrefixNode:
    """One edge of the radix tree: `tokens` occupy positions [start, start + len(tokens)) of every
    sequence that passes through this node."""

    start: int
    tokens: list[int]
    children: dict[int, PrefixNode] = field(default_factory=dict)
    # Indices of the sequences that end exactly at the end of this node.
    ends: list[int] = field(default_factory=list)
    # Indices of the sequences that need next-token log-probs at some of this node's positions (always a
    # suffix of the node, see `attach_scored_spans`).
    scored: list[int] = field(default_factory=list)

    @property
    def end(self) -> int:
        return self.start + len(self.tokens)


def _common_prefix_len(edge: list[int], seq: Sequence[int], pos: int) -> int:
    """How many tokens of `edge` match `seq` from position `pos` on."""
    n = min(len(edge), len(seq) - pos)
    if edge[:n] == list(seq[pos : pos + n]):  # fast path: C-level list comparison
        return n
    i = 0
    while i < n and edge[i] == seq[pos + i]:
        i += 1
    return i


def build_prefix_tree(sequences: Sequence[Sequence[int]]) -> PrefixNode:
    """Insert every sequence into a radix tree and return its root (an empty node at position 0).

    `root.ends` and each node's `ends` list the sequence indices that end there; identical sequences end at
    the same node.
    """
    root = PrefixNode(start=0, tokens=[])
    for index, seq in enumerate(sequences):
        node, pos = root, 0
        while pos < len(seq):
            child = node.children.get(seq[pos])
            if child is None:
                node.children[seq[pos]] = PrefixNode(start=pos, tokens=list(seq[pos:]))
                node = node.children[seq[pos]]
                pos = len(seq)
                break
            matched = _common_prefix_len(child.tokens, seq, pos)
            if matched < len(child.tokens):
                # Split the edge: the shared part becomes a new node above the old one.
                upper = PrefixNode(start=child.start, tokens=child.tokens[:matched])
                child.tokens = child.tokens[matched:]
                child.start += matched
                upper.children[child.tokens[0]] = child
                node.children[seq[pos]] = upper
                child = upper
            node, pos = child, pos + matched
        node.ends.append(index)
    return root


def iter_nodes(root: PrefixNode) -> Iterator[PrefixNode]:
    """All nodes of the tree, parents before children (iterative: trees can be deep)."""
    stack = [root]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(node.children.values())


def prefix_tree_tokens(sequences: Sequence[Sequence[int]]) -> int:
    """Number of distinct prefix-tree tokens: the forward tokens needed to run all `sequences` when every
    shared prefix is computed once."""
    return sum(len(node.tokens) for node in iter_nodes(build_prefix_tree(sequences)))


def attach_scored_spans(root: PrefixNode, first_scored: Sequence[int]) -> None:
    """Record, on each node, which sequences need log-probs at its positions.

    Sequence i needs the next-token distribution at positions [first_scored[i], len(sequence i)). Those
    positions end where the sequence ends, so within any node they form a suffix of the node: the node where
    the sequence ends, and the ancestors that its scored span reaches back into.
    """
    parent_of: dict[int, PrefixNode] = {}
    for node in iter_nodes(root):
        for child in node.children.values():
            parent_of[id(child)] = node
    for node in iter_nodes(root):
        for index in node.ends:
            owner: PrefixNode | None = node
            while owner is not None and owner is not root and owner.end > first_scored[index]:
                owner.scored.append(index)
                owner = parent_of.get(id(owner))
