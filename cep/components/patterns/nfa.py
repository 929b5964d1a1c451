"""A pattern compiled into Flink CEP's automaton.

The construction is Flink's NFACompiler, so the matches are Flink's: states joined by TAKE
(bind the event and move), IGNORE (skip the event and stay or move) and PROCEED (an epsilon move
taken when its condition holds for the current event) edges, built from the last step back to the
first. Negated relaxed steps become PROCEED edges into a STOP state on the states that may be
waiting when the forbidden event comes; a negated strict step is a state of its own; a trailing
negated relaxed step is a PENDING state whose match is released when the window closes.

Edge conditions are `(event, node) -> bool` (None means always), where `node` is the buffer node
of the run being extended; user conditions are wrapped so they receive a `MatchView`.
"""
from __future__ import annotations

from cep.components.patterns.model import Pattern, Step
from cep.components.patterns.expressions import BoundCondition
from cep.components.patterns.view import MatchView, node_getters

TAKE, IGNORE, PROCEED = 0, 1, 2
NORMAL, FINAL, STOP, PENDING = "normal", "final", "stop", "pending"


class State:
    """One automaton state; `step` is the index of the step whose events it binds."""

    __slots__ = ("step", "kind", "edges", "proceeds", "start_edges", "may_finish")

    def __init__(self, step: int, kind: str = NORMAL):
        self.step = step
        self.kind = kind
        self.edges: list[tuple] = []  # (action, target, condition or None)
        self.proceeds = False
        self.start_edges: tuple = ()  # set by `freeze`: the edges a start run follows
        self.may_finish = False       # set by `freeze`: PROCEED edges may lead to FINAL

    def add(self, action: int, target: "State", condition) -> None:
        self.edges.append((action, target, None if condition is ALWAYS else condition))
        self.proceeds = self.proceeds or action == PROCEED

    def freeze(self) -> None:
        """Fix the edges once the automaton is built: a tuple, the subset a start run follows
        (a start run never branches by ignoring: it stays), and whether PROCEED edges may lead
        to the final state."""
        self.edges = tuple(self.edges)
        self.start_edges = tuple(edge for edge in self.edges if edge[0] != IGNORE)
        seen, pending = set(), [self]
        while pending:
            current = pending.pop()
            for action, target, _condition in current.edges:
                if action == PROCEED and id(target) not in seen:
                    seen.add(id(target))
                    self.may_finish = self.may_finish or target.kind == FINAL
                    pending.append(target)

    def copy(self) -> "State":
        twin = State(self.step, self.kind)
        for action, target, condition in self.edges:
            twin.add(action, twin if target is self else target, condition)
        return twin

    def __repr__(self) -> str:  # for debugging compiled automata
        return f"State(step={self.step}, kind={self.kind}, edges={len(self.edges)})"


def ALWAYS(event, node):  # noqa: N802 - a sentinel condition
    return True


def NEVER(event, node):  # noqa: N802
    return False


def both(first, second):
    """Conjunction, simplified when either side is ALWAYS."""
    if first is ALWAYS:
        return second
    if second is ALWAYS:
        return first
    return lambda event, node: first(event, node) and second(event, node)


def negate(condition):
    if condition is ALWAYS:
        return NEVER
    return lambda event, node: not condition(event, node)


class Automaton:
    """The compiled pattern: `start` state, the shared `final` state and the step names."""

    def __init__(self, pattern: Pattern):
        self.pattern = pattern
        self.final = State(-1, FINAL)
        _Builder(pattern, self.final).build(self)
        for state in _reachable(self.start):
            state.freeze()

    def states(self) -> list[State]:
        """Every state, in an order that is the same for every build of the pattern."""
        found = _reachable(self.start)
        return found if any(state is self.final for state in found) else found + [self.final]


def _reachable(start: State) -> list[State]:
    found, pending = {id(start): start}, [start]
    while pending:
        for _action, target, _condition in pending.pop().edges:
            if id(target) not in found:
                found[id(target)] = target
                pending.append(target)
    return list(found.values())


class _Builder:
    """Flink's NFAFactoryCompiler, traversing the steps from last to first."""

    def __init__(self, pattern: Pattern, final: State):
        self.steps = pattern.steps
        self.within = pattern.within_ns
        self.final = final
        self.index = {s.name: (i, s.looping) for i, s in enumerate(self.steps)}
        self.stop_states: dict[str, State] = {}
        self.original: dict[int, State] = {}  # id(sink) -> its copy made for greedy + until
        self.current = len(self.steps) - 1
        self.conditions = [self._wrap(s.condition, i) for i, s in enumerate(self.steps)]
        self.untils = [self._wrap(s.until, i) if s.until else None
                       for i, s in enumerate(self.steps)]

    def _wrap(self, condition, step: int):
        """The user condition as an edge condition `(event, node) -> bool`, remembering its last
        answer: one run tests the same condition on the same event several times (TAKE, IGNORE
        as its negation, PROCEED into STOP states), and conditions are pure."""
        if condition is None:
            return ALWAYS
        test = self._on_node(condition, step)
        last_event = last_node = last = None

        def remembered(event, node):
            nonlocal last_event, last_node, last
            if event is last_event and node is last_node:
                return last
            last = test(event, node)
            last_event, last_node = event, node
            return last
        return remembered

    def _on_node(self, condition, step: int):
        """`condition` as `(event, node) -> bool`: an expression condition gets the values it
        reads from the node directly; any other callable gets a `MatchView`."""
        index = self.index
        if isinstance(condition, BoundCondition):  # reads named values: bind them from the node
            function, used = condition.function, condition.used
            if not used:
                return lambda event, node: function(event)
            if used == ("prev",):
                return lambda event, node: function(
                    event, node[1] if node is not None and node[0] == step else None)
            getters = node_getters(used, step, index)
            if len(getters) == 1:
                (first,) = getters
                return lambda event, node: function(event, first(node))
            if len(getters) == 2:
                first, second = getters
                return lambda event, node: function(event, first(node), second(node))
            if len(getters) == 3:
                first, second, third = getters
                return lambda event, node: function(event, first(node), second(node),
                                                    third(node))
            return lambda event, node: function(event, *[get(node) for get in getters])
        return lambda event, node: condition(event, MatchView(node, step, index))

    # -- the traversal ---------------------------------------------------------------------
    def build(self, automaton: Automaton) -> None:
        sink = self.final
        while self.current > 0:
            step = self.steps[self.current]
            if step.negated and step.contiguity == "relaxed":
                if sink is self.final and self.within:
                    sink = self._pending_state(sink)
            elif step.negated:
                sink = self._not_next_state(sink)
            else:
                sink = self._convert(sink)
            self.current -= 1
        automaton.start = self._convert(sink)

    @property
    def step(self) -> Step:
        return self.steps[self.current]

    @property
    def following(self) -> Step | None:
        nxt = self.current + 1
        return self.steps[nxt] if nxt < len(self.steps) else None

    def _new(self, kind: str = NORMAL) -> State:
        return State(self.current, kind)

    def _stop_state(self, condition, name: str) -> State:
        stop = self.stop_states.get(name)
        if stop is None:
            stop = State(self.index[name][0], STOP)
            stop.add(TAKE, stop, condition)
            self.stop_states[name] = stop
        return stop

    def _pending_state(self, sink: State) -> State:
        forbidden = self.conditions[self.current]
        pending = self._new(PENDING)
        pending.add(PROCEED, self._stop_state(forbidden, self.step.name), forbidden)
        pending.add(IGNORE, pending, negate(forbidden))
        return pending

    def _not_next_state(self, sink: State) -> State:
        forbidden = self.conditions[self.current]
        state = self._new()
        # into the final state by IGNORE, so that reaching it is not a PROCEED to final
        state.add(IGNORE if sink is self.final else PROCEED, sink, negate(forbidden))
        state.add(PROCEED, self._stop_state(forbidden, self.step.name), forbidden)
        return state

    # -- conditions ------------------------------------------------------------------------
    def _not_conditions(self) -> list[tuple]:
        """Negated relaxed steps reachable backwards through optional or negated steps."""
        found = []
        index = self.current - 1
        while index >= 0 and (self.steps[index].optional or self._not_follow(index)):
            if self._not_follow(index):
                found.append((self.conditions[index], self.steps[index].name))
            index -= 1
        return found

    def _not_follow(self, index: int) -> bool:
        step = self.steps[index]
        return step.negated and step.contiguity == "relaxed"

    def _ignore(self, contiguity: str):
        """The IGNORE condition for a contiguity (None: no IGNORE edge at all)."""
        if contiguity == "strict":
            return None
        if contiguity == "any":
            return ALWAYS
        return negate(self.conditions[self.current])

    def _with_until(self, condition, is_take: bool):
        until = self.untils[self.current]
        if until is not None and condition is not None:
            return both(negate(until), condition)
        if until is not None and is_take:
            return negate(until)
        return condition

    # -- states ----------------------------------------------------------------------------
    def _convert(self, sink: State) -> State:
        step = self.step
        if step.one_or_more:
            looping = self._looping_state(self._without_transitive_nots(sink))
            last = self._times_state(looping, sink, step.bounds[0], step.bounds[0])
        elif step.times is not None:
            last = self._times_state(sink, sink, *step.bounds)
        else:
            last = self._singleton(sink, sink, self.conditions[self.current],
                                   self._ignore(step.contiguity), step.optional)
        self._add_stop_states(last)
        return last

    def _add_stop_states(self, state: State) -> None:
        for condition, name in self._not_conditions():
            state.add(PROCEED, self._stop_state(condition, name), condition)

    def _add_stop_state_to_looping(self, state: State) -> None:
        following = self.following
        if following is not None and following.negated and following.contiguity == "relaxed":
            forbidden = self.conditions[self.current + 1]
            state.add(PROCEED, self._stop_state(forbidden, following.name), forbidden)

    def _without_transitive_nots(self, sink: State) -> State:
        """For an optional step: the copy of `sink` reached by TAKE, without the STOP edges of
        negated steps before the optional one (binding an event ends their watch)."""
        nots = self._not_conditions()
        if not nots or not self.step.optional:
            return sink
        names = {name for _, name in nots}
        twin = State(sink.step, sink.kind)
        for action, target, condition in sink.edges:
            condition = ALWAYS if condition is None else condition
            if action == PROCEED:
                if target.kind == STOP:
                    if any(self.steps[target.step].name == n for n in names):
                        continue
                else:
                    target = self._without_transitive_nots(target)
                twin.add(action, target, condition)
            else:
                twin.add(action, twin if target is sink else target, condition)
        return twin

    def _times_state(self, sink: State, proceed: State, low: int, high: int) -> State:
        step = self.step
        take = self._with_until(self.conditions[self.current], True)
        inner_ignore = self._with_until(self._ignore(step.inner_contiguity), False)
        if step.greedy and low != high:
            if self.untils[self.current] is not None:
                self.original[id(sink)] = sink.copy()
            _make_greedy(sink, take)
        last = sink
        for _ in range(low, high):
            last = self._singleton(last, proceed, take, inner_ignore, True)
            self._add_stop_state_to_looping(last)
        for _ in range(low - 1):
            last = self._singleton(last, None, take, inner_ignore, False)
            self._add_stop_state_to_looping(last)
        return self._singleton(last, proceed, take,
                               self._ignore(step.contiguity), step.optional)

    def _singleton(self, sink: State, proceed: State | None, take, ignore,
                   optional: bool) -> State:
        step = self.step
        state = self._new()
        target = self._without_transitive_nots(sink)
        state.add(TAKE, target, take)
        if optional:
            until = self.untils[self.current]
            if step.greedy and until is not None:
                original = self.original.get(id(proceed))
                if original is not None:
                    state.add(PROCEED, original, until)
                state.add(PROCEED, proceed, negate(until))
            else:
                state.add(PROCEED, proceed, ALWAYS)
        if ignore is not None:
            if optional:
                waiting = self._new()
                waiting.add(TAKE, target, take)
                waiting.add(IGNORE, waiting, ignore)
                self._add_stop_states(waiting)
            else:
                waiting = state
            state.add(IGNORE, waiting, ignore)
        return state

    def _looping_state(self, sink: State) -> State:
        step = self.step
        until = self.untils[self.current]
        ignore = self._with_until(self._ignore(step.inner_contiguity), False)
        take = self._with_until(self.conditions[self.current], True)
        loop = self._new()
        if step.greedy:
            if until is not None:
                twin = sink.copy()
                loop.add(PROCEED, twin, until)
                self.original[id(sink)] = twin
            loop.add(PROCEED, sink, negate(until) if until is not None else ALWAYS)
            _make_greedy(sink, self.conditions[self.current])
        else:
            loop.add(PROCEED, sink, ALWAYS)
        loop.add(TAKE, loop, take)
        self._add_stop_state_to_looping(loop)
        if ignore is not None:
            waiting = self._new()
            waiting.add(TAKE, loop, take)
            waiting.add(IGNORE, waiting, ignore)
            loop.add(IGNORE, waiting, ignore)
            self._add_stop_state_to_looping(waiting)
        return loop


def _make_greedy(state: State, take) -> None:
    """Every edge out of `state` additionally requires that the greedy loop could not take."""
    refused = negate(take)
    state.edges = [(action, target, both(ALWAYS if cond is None else cond, refused))
                   for action, target, cond in state.edges]
