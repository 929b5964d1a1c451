"""What a condition sees of the partial match it would extend.

`MatchView.prev` is the event bound just before in the same looping step (None for the step's first
event). `view[name]` is what an earlier step bound: a looping step (times / one_or_more) gives a
list of events, any other step one event (None when it bound nothing, e.g. a skipped optional).
`view.bind(names)` returns those values in the given order, so an expression compiled with
`bound=("prev", "dip", "up")` is called as `expr(event, *view.bind(("prev", "dip", "up")))`.
"""
from __future__ import annotations

from cep.components.patterns.buffer import Node


class MatchView:
    """A read-only window on one partial match, for the condition of one step."""

    __slots__ = ("_node", "_step", "_steps", "prev")

    def __init__(self, node: Node | None, step: int, steps: "StepIndex"):
        self._node = node
        self._step = step
        self._steps = steps
        self.prev = node[1] if node is not None and node[0] == step else None

    def __getitem__(self, name: str):
        return self.bind((name,))[0]

    def bind(self, names: tuple[str, ...]) -> tuple:
        """The values of `names` ("prev" or step names), in that order. Unknown names raise
        KeyError (the pattern's validation is where user-facing names are checked)."""
        values = []
        for name in names:
            if name == "prev":
                values.append(self.prev)
                continue
            index, looping = self._steps[name]
            node = self._node
            if looping:
                events = []
                while node is not None:
                    if node[0] == index:
                        events.append(node[1])
                    node = node[3]
                events.reverse()
                values.append(events)
            else:
                while node is not None and node[0] != index:
                    node = node[3]
                values.append(None if node is None else node[1])
        return tuple(values)


StepIndex = dict  # step name -> (step index, looping)


def node_getters(names: tuple[str, ...], step: int, steps: StepIndex) -> tuple:
    """One `node -> value` per name, each what `MatchView(node, step, steps).bind(names)` gives
    for it, without building a view (the hot path of compiled expressions)."""
    return tuple(_getter(name, step, steps) for name in names)


def _getter(name: str, step: int, steps: StepIndex):
    """`node -> value` of one name, as `MatchView.bind` reads it."""
    if name == "prev":
        return lambda node: node[1] if node is not None and node[0] == step else None
    index, looping = steps[name]
    if looping:
        def events(node):
            found = []
            while node is not None:
                if node[0] == index:
                    found.append(node[1])
                node = node[3]
            found.reverse()
            return found
        return events

    def event(node):
        while node is not None:
            if node[0] == index:
                return node[1]
            node = node[3]
        return None
    return event
