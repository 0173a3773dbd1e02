"""The radix tree that decides what the scoring backend computes."""

from mergeval.engines.lmeval.scoring import prefix_tree_tokens
from mergeval.engines.lmeval.scoring._prefix_tree import attach_scored_spans, build_prefix_tree, iter_nodes


def _brute_force_distinct_prefixes(sequences):
    return len({tuple(seq[: i + 1]) for seq in sequences for i in range(len(seq))})


def test_tree_tokens_equal_distinct_prefixes():
    sequences = [
        [1, 2, 3, 4, 5],
        [1, 2, 3, 9],
        [1, 2],  # a prefix of others: ends inside what was an edge
        [1, 2, 3, 4, 5],  # duplicate
        [7, 8],
        [1, 2, 3, 4, 6, 6, 6],
    ]
    assert prefix_tree_tokens(sequences) == _brute_force_distinct_prefixes(sequences) == 11


def test_every_sequence_ends_once_at_a_node_spelling_it():
    sequences = [[5, 6, 7], [5, 6], [5, 6, 8, 9], [5, 6, 7], [4]]
    root = build_prefix_tree(sequences)
    spelled = {}

    def walk(node, prefix):
        prefix = prefix + node.tokens
        for index in node.ends:
            spelled[index] = prefix
        for child in node.children.values():
            assert child.start == node.end
            walk(child, prefix)

    walk(root, [])
    assert spelled == dict(enumerate(sequences))


def test_scored_spans_reach_back_into_ancestors():
    # Sequence 0 scores its last 3 positions: 2 in its own node [3, 5) and 1 in the shared node [0, 3).
    sequences = [[1, 2, 3, 4, 5], [1, 2, 3, 6]]
    root = build_prefix_tree(sequences)
    attach_scored_spans(root, first_scored=[2, 3])
    by_tokens = {tuple(node.tokens): node for node in iter_nodes(root)}
    assert sorted(by_tokens[(1, 2, 3)].scored) == [0]
    assert by_tokens[(4, 5)].scored == [0]
    assert by_tokens[(6,)].scored == [1]
