"""The shared buffer of partial matches.

A partial match (a *run* of the automaton) holds one pointer: the buffer node of the last event it
bound. A node is the immutable tuple `(step, event, seq, parent)`: the index of the step that bound
the event, the event itself, its arrival number within its key, and the node of the event bound
just before in the same run. Runs that share a prefix share its nodes, so branching a run (what
`any` contiguity does on every event) costs one pointer, never a copy of the events so far.

This is Flink's SharedBuffer with the bookkeeping made structural: Flink stores one node per
(event, state) and needs Dewey-numbered edge versions to tell which predecessor belongs to which
run; here every node has exactly one predecessor, so a run's path is unambiguous without versions,
and Python's reference counts are the buffer's reference counts: a node (and its event) is freed
as soon as no live run, pending match or later node points at it.
"""
from __future__ import annotations

from typing import Iterator

Node = tuple  # (step index, event dict, seq int, parent Node | None)


def extend(parent: Node | None, step: int, event: dict, seq: int) -> Node:
    """The node binding `event` to `step` after `parent` (None for a run's first event)."""
    return (step, event, seq, parent)


def walk(node: Node | None) -> Iterator[Node]:
    """The nodes of a run, last bound first."""
    while node is not None:
        yield node
        node = node[3]


def events_by_step(node: Node | None) -> dict[int, list[dict]]:
    """The events a run has bound, per step index, each list in binding order."""
    found: dict[int, list[dict]] = {}
    for step, event, _seq, _parent in walk(node):
        found.setdefault(step, []).append(event)
    for events in found.values():
        events.reverse()
    return found


def seqs_by_step(node: Node | None) -> dict[int, list[int]]:
    """Like `events_by_step`, with arrival numbers instead of events (for skip strategies)."""
    found: dict[int, list[int]] = {}
    for step, _event, seq, _parent in walk(node):
        found.setdefault(step, []).append(seq)
    for seqs in found.values():
        seqs.reverse()
    return found


def first_seq(node: Node) -> int:
    """Arrival number of the first event a run bound."""
    while node[3] is not None:
        node = node[3]
    return node[2]
