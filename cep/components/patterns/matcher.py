"""Running a pattern over a keyed stream of events, with Flink CEP's semantics.

One `Matcher` serves every key; each key has its own partial matches, so keys never influence each
other. Events must be fed in event-time order per key (Flink sorts them by watermark first); the
`timestamp` field (int ns) is event time.

Per event, as Flink's CEP operator does: first time advances to the event's timestamp (partial
matches whose first event is `within` or more before it are pruned; a match waiting on a trailing
negated step whose window closed is released), then every partial match takes the event.

Output order. Every call returns matches ordered by their first event (arrival order); matches
that start at the same event keep the order in which the automaton produced them. With a skip
strategy other than `no_skip`, a finished match is held back while a partial match that started
earlier is still alive (it may finish later and, by the strategy, discard the held one); this is
Flink's rule, and it is what makes `skip_past_last_event` matches never overlap. `finish()` ends
the stream: matches waiting on a trailing negated step are released, the other partial matches
are dropped, and held-back matches are emitted.

Memory: the partial matches of a key are capped at `max_partials`; past the cap the most recently
started ones are discarded and counted in `counters["discarded"]`. `counters["timed_out"]` counts
partial matches pruned by `within`, `counters["skipped"]` those discarded by the skip strategy.
"""
from __future__ import annotations

import heapq
from typing import Any

from typing_extensions import TypedDict

from cep.components.patterns.buffer import Node, events_by_step, first_seq, seqs_by_step
from cep.components.patterns.model import Pattern, validate_pattern
from cep.components.patterns.nfa import FINAL, PENDING, STOP, Automaton, State
from cep.components.state import InvalidState, RecordData
from cep.errors import ConfigError

Run = tuple  # (state, node, start timestamp, start seq); node None only for the start run
RunData = tuple[int, int, int | float, int]
"""A run in a snapshot: automaton state number, buffer node number (-1: none), start timestamp
and seq."""


class CounterData(TypedDict):
    discarded: int
    timed_out: int
    skipped: int


class MatcherData(TypedDict):
    """The schema of `Matcher.snapshot()`."""

    keys: list[tuple[Any, list[RunData], list[RunData], int]]  # key, runs, held runs, next seq
    nodes: list[tuple[int, int, int, int]]                       # step, event, seq, parent
    events: list[RecordData]
    counters: CounterData


class Match(dict):
    """One match: step name -> events bound to it, in match order (steps that bound nothing are
    absent). `key` is the partition key it was found in."""

    __slots__ = ("key",)

    def __init__(self, key, bound: dict):
        super().__init__(bound)
        self.key = key


class _KeyState:
    __slots__ = ("runs", "held", "seq")

    def __init__(self):
        self.runs: list[Run] = []   # partial matches, ordered by start
        self.held: list[Run] = []   # finished matches waiting for earlier partial matches
        self.seq = 0                # arrival number of the next event of this key


class Matcher:
    """Finds the matches of one pattern, independently per key.

    Raises `ConfigError` (with every problem) if `validate_pattern` finds errors.
    """

    def __init__(self, pattern: Pattern, max_partials: int = 10_000):
        errors = [p for p in validate_pattern(pattern) if p.severity == "error"]
        if errors:
            raise ConfigError(errors)
        if max_partials < 1:
            raise ConfigError(f"max_partials must be at least 1, got {max_partials}")
        self.pattern = pattern
        self.max_partials = max_partials
        self._automaton = Automaton(pattern)
        self._start: Run = (self._automaton.start, None, None, None)
        self._final = self._automaton.final
        self._within = pattern.within_ns or 0
        self._skip, skip_step = pattern.skip_strategy
        self._skip_step = pattern.names.get(skip_step) if skip_step else None
        self._names = [step.name for step in pattern.steps]
        self._keys: dict = {}
        self.counters = {"discarded": 0, "timed_out": 0, "skipped": 0}

    # -- public API --------------------------------------------------------------------------
    def feed(self, key, event: dict) -> list[Match]:
        """Advance `key` to the event's time, then apply the event; the matches it completes."""
        keyed = self._keys.get(key)
        if keyed is None:
            keyed = self._keys[key] = _KeyState()
        timestamp = event["timestamp"]
        finished: list[Run] = []
        if self._within and keyed.runs:
            self._expire(keyed, timestamp, finished)
        seq = keyed.seq
        keyed.seq = seq + 1
        runs = []
        for run in keyed.runs:
            self._step(run, event, timestamp, seq, runs, finished)
        self._step(self._start, event, timestamp, seq, runs, finished)
        if len(runs) > self.max_partials:
            self.counters["discarded"] += len(runs) - self.max_partials
            del runs[self.max_partials:]
        keyed.runs = runs
        if not finished and not keyed.held:
            return []
        return self._release(key, keyed, finished)

    def partials(self, top: int) -> tuple[int, list[tuple[Any, int]]]:
        """(partial matches alive over every key, the `top` keys holding the most and how many):
        a walk over the keys, for reports, not per event."""
        alive = {key: len(keyed.runs) for key, keyed in self._keys.items() if keyed.runs}
        return sum(alive.values()), heapq.nlargest(top, alive.items(), key=lambda item: item[1])

    def advance_time(self, timestamp: int) -> list[Match]:
        """Event time reached `timestamp` on every key: prune partial matches whose window
        closed and release matches of a trailing negated step whose window closed."""
        if not self._within:
            return []
        out: list[Match] = []
        for key, keyed in self._keys.items():
            finished: list[Run] = []
            if keyed.runs:
                self._expire(keyed, timestamp, finished)
            if finished or keyed.held:
                out.extend(self._release(key, keyed, finished))
        return out

    def finish(self) -> list[Match]:
        """End of stream: release what can still be known to match, drop the rest."""
        out: list[Match] = []
        for key, keyed in self._keys.items():
            finished = [run for run in keyed.runs if run[0].kind == PENDING]
            keyed.runs = []
            out.extend(self._release(key, keyed, finished))
        return out

    def snapshot(self) -> dict:
        """Everything the matcher remembers, as plain data (see `cep.components.state`): per key
        its runs `(automaton state number, node number, start timestamp, start seq)`, held runs
        and next seq; the buffer nodes `(step, event number, seq, parent node number or -1)`,
        parents first, each once however many runs share it; each event once."""
        number = {id(state): index for index, state in enumerate(self._automaton.states())}
        nodes: list[list] = []
        events: list[dict] = []
        node_at: dict[int, int] = {}
        event_at: dict[int, int] = {}

        def node_number(node: Node | None) -> int:
            chain = []  # the nodes not numbered yet, last bound first
            while node is not None and id(node) not in node_at:
                chain.append(node)
                node = node[3]
            parent = -1 if node is None else node_at[id(node)]
            while chain:
                node = chain.pop()
                step, event, seq, _ = node
                if id(event) not in event_at:
                    event_at[id(event)] = len(events)
                    events.append(event)
                nodes.append([step, event_at[id(event)], seq, parent])
                node_at[id(node)] = parent = len(nodes) - 1
            return parent

        def plain(runs: list[Run]) -> list[list]:
            return [[number[id(state)], node_number(node), start_ts, start_seq]
                    for state, node, start_ts, start_seq in runs]
        return {"keys": [[key, plain(k.runs), plain(k.held), k.seq] for key, k in self._keys.items()],
                "nodes": nodes, "events": events, "counters": dict(self.counters)}

    def restore(self, saved: MatcherData) -> None:
        """Take back a `snapshot()` of a matcher of the same pattern, as checked against
        `MatcherData`; InvalidState if it refers to a step, state, node or event not there."""
        states = self._automaton.states()
        nodes: list[Node] = []
        for step, event, seq, parent in saved["nodes"]:
            if not (0 <= step < len(self._names) and 0 <= event < len(saved["events"]) and -1 <= parent < len(nodes)):
                raise InvalidState(f"buffer node {len(nodes)} refers to a step, event or parent that is not there")
            nodes.append((step, saved["events"][event], seq, nodes[parent] if parent >= 0 else None))

        def runs(plain: list[tuple]) -> list[Run]:
            if any(not 0 <= state < len(states) or not -1 <= node < len(nodes) for state, node, _, _ in plain):
                raise InvalidState("a run refers to an automaton state or buffer node that is not there")
            return [(states[state], nodes[node] if node >= 0 else None, start_ts, start_seq)
                    for state, node, start_ts, start_seq in plain]
        self._keys = {}
        for key, active, held, seq in saved["keys"]:
            keyed = self._keys[key] = _KeyState()
            keyed.runs, keyed.held, keyed.seq = runs(active), runs(held), seq
        self.counters = dict(saved["counters"])

    def partial_count(self, key=None) -> int:
        """Live partial matches of `key` (of all keys when None)."""
        states = self._keys.values() if key is None else [self._keys.get(key) or _KeyState()]
        return sum(len(k.runs) + len(k.held) for k in states)

    # -- one event, one run ---------------------------------------------------------------------
    def _step(self, run: Run, event: dict, timestamp: int, seq: int,
              runs: list, finished: list) -> None:
        """Flink's computeNextStates for one run: follow PROCEED edges whose condition holds,
        then branch once per open TAKE or IGNORE edge (a start run ignores nothing: it stays).
        If any branch reaches a STOP state (a negated step saw its event) the run's other
        branches die with it; finished branches are still reported, as in Flink."""
        state, node, start_ts, start_seq = run
        is_start = node is None
        edges = state.start_edges if is_start else state.edges
        retained = None
        pending = None
        stopped = False
        while True:
            for action, target, condition in edges:
                if condition is not None and not condition(event, node):
                    continue
                if action == 2:  # PROCEED
                    if pending is None:
                        pending = [target]
                    else:
                        pending.append(target)
                    continue
                if action == 1:  # IGNORE
                    new = (target, node, start_ts, start_seq)
                else:
                    if is_start:
                        start_ts, start_seq = timestamp, seq
                    new = (target, (state.step, event, seq, node), start_ts, start_seq)
                    if target.may_finish and _final_after_proceed(target, event, new[1]):
                        finished.append((self._final, new[1], start_ts, start_seq))
                kind = target.kind
                if kind is FINAL:
                    finished.append(new)
                elif kind is STOP:
                    stopped = True
                elif retained is None:
                    retained = [new]
                else:
                    retained.append(new)
            if not pending:
                break
            state = pending.pop()
            edges = state.start_edges if is_start else state.edges
        if retained is not None and not stopped:
            runs.extend(retained)

    def _expire(self, keyed: _KeyState, timestamp: int, finished: list) -> None:
        limit = timestamp - self._within
        runs = keyed.runs
        cut = 0
        while cut < len(runs) and runs[cut][2] <= limit:
            cut += 1
        if not cut:
            return
        for run in runs[:cut]:
            if run[0].kind == PENDING:
                finished.append(run)
            else:
                self.counters["timed_out"] += 1
        keyed.runs = runs[cut:]

    # -- emitting, with the skip strategy ----------------------------------------------------
    def _release(self, key, keyed: _KeyState, finished: list[Run]) -> list[Match]:
        if self._skip == "no_skip":
            finished.sort(key=_start_order)
            return [self._match(key, run[1]) for run in finished]
        held = keyed.held
        held.extend(finished)
        held.sort(key=_start_order)
        out = []
        while held and (not keyed.runs or _start_order(held[0]) <= _start_order(keyed.runs[0])):
            run = held.pop(0)
            pruning = self._pruning_seq(run[1])
            if pruning is not None:
                strict = self._skip in ("skip_to_first", "skip_to_last")
                keyed.runs = self._prune(keyed.runs, pruning, strict)
                held[:] = self._prune(held, pruning, strict)
            out.append(self._match(key, run[1]))
        return out

    def _pruning_seq(self, node: Node) -> int | None:
        if self._skip == "skip_past_last_event":
            return node[2]
        if self._skip == "skip_to_next":
            return first_seq(node)
        seqs = seqs_by_step(node).get(self._skip_step)
        if not seqs:
            return None  # the step bound nothing: Flink's default is then not to skip
        return seqs[0] if self._skip == "skip_to_first" else seqs[-1]

    def _prune(self, runs: list[Run], pruning: int, strict: bool) -> list[Run]:
        kept = [run for run in runs
                if not (run[3] < pruning if strict else run[3] <= pruning)]
        self.counters["skipped"] += len(runs) - len(kept)
        return kept

    def _match(self, key, node: Node) -> Match:
        bound = events_by_step(node)
        return Match(key, {self._names[i]: bound[i] for i in sorted(bound)})


def _start_order(run: Run) -> tuple[int, int]:
    return run[2], run[3]


def _final_after_proceed(state: State, event: dict, node: Node | None) -> bool:
    """Whether PROCEED edges lead from `state` to the final state for `event`."""
    pending = [state]
    while pending:
        current = pending.pop()
        for action, target, condition in current.edges:
            if action == 2 and (condition is None or condition(event, node)):
                if target.kind == FINAL:
                    return True
                pending.append(target)
    return False
