"""Checkpoints hold data, never code (issue 14, item 14): state is msgpack of plain data, and what
comes back from the file is checked against each component's schema, so a tampered checkpoint can at
worst be refused, with a message naming the node, never run."""
import math
import os
import pickle
import sqlite3
from pathlib import Path

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import cep
from cep.components.base import BuildContext
from cep.components.patterns.matcher import Matcher
from cep.components.rules.momentum import MomentumParams, momentum
from cep.components.state import InvalidState
from cep.errors import RuntimeFailure
from cep.runtime.checkpoint import Checkpointer, CheckpointStore, decode_state, encode_state
from tests.test_delivery_checkpoint import PATTERNS, hooks_of
from cep.plugins.manager import default_registry
from tests.test_operators_harness import SAMPLES
from tests.test_operators_harness import params as operator_params
from tests.natsserver import nats_server  # noqa: F401 (fixture: the nats sink connects)

# -- the format --------------------------------------------------------------------------------------
scalars = (st.none() | st.booleans() | st.integers() | st.integers(-2 ** 200, 2 ** 200)
           | st.floats(allow_nan=False) | st.text() | st.binary())
keys = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text() \
    | st.tuples(st.text(), st.integers())
plain = st.recursive(scalars, lambda inner: st.lists(inner) | st.tuples(inner, inner)
                     | st.dictionaries(keys, inner), max_leaves=30)


def same(a, b) -> bool:
    """Equal, and of the same types all the way down (a tuple must not come back as a list)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(v, b[k]) for k, v in a.items())
    return a == b


@settings(max_examples=300, deadline=None)
@given(plain)
def test_plain_data_comes_back_as_it_was_big_integers_tuples_and_tuple_keys_included(value):
    assert same(decode_state(encode_state(value)), value)


def test_nan_and_infinities_come_back():
    back = decode_state(encode_state([math.nan, math.inf, -math.inf]))
    assert math.isnan(back[0]) and back[1:] == [math.inf, -math.inf]


@pytest.mark.parametrize("value", [{1, 2}, object(), {"f": len}, [Path("/")]])
def test_what_is_not_plain_data_cannot_be_checkpointed(tmp_path, value):
    store = CheckpointStore(tmp_path / "w.sqlite", fresh=True)
    with pytest.raises(RuntimeFailure, match="the state of 'scan' cannot be checkpointed"):
        Checkpointer(store, {"scan#0": (lambda: value, print)}, {}).commit()
    store.close()


# -- a tampered checkpoint is refused, never run -----------------------------------------------------
class _Exploit:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def hostile_values(marker: Path) -> dict[str, bytes]:
    return {"a pickle that runs a command": pickle.dumps(_Exploit(marker)),
            "garbage bytes": b"\xc1\x00\xff garbage",
            "msgpack of the wrong shape": msgpack.packb({"streaks": "of nothing"}),
            "an unknown extension type": msgpack.packb(msgpack.ExtType(42, b"\x80\x04"))}


def plant(db: Path, value: bytes) -> None:
    """Overwrite every state a worker's checkpoint holds, as an intruder with write access would."""
    with sqlite3.connect(db, timeout=10) as planted:
        assert planted.execute("UPDATE state SET value = ?", (value,)).rowcount > 0


@pytest.mark.parametrize("case", list(hostile_values(Path("m"))))
def test_a_tampered_state_is_refused_naming_the_node_and_the_file(tmp_path, case):
    marker = tmp_path / "marker"
    db = tmp_path / "strategy.sqlite"
    first, (snapshot, _) = hooks_of(momentum, MomentumParams(count=3), key="instrument")
    store = CheckpointStore(db, fresh=True)
    Checkpointer(store, {"up3#0": (snapshot, print)}, {}).commit()
    store.close()
    plant(db, hostile_values(marker)[case])
    _, (_, restore) = hooks_of(momentum, MomentumParams(count=3), key="instrument")
    restarted = Checkpointer(CheckpointStore(db, fresh=False), {"up3#0": (snapshot, restore)}, {})
    with pytest.raises(RuntimeFailure) as refused:
        restarted.restore()
    assert not marker.exists()
    text = str(refused.value)
    why = "valid tuple" if case == "msgpack of the wrong shape" else "it is not msgpack of plain data"
    assert text.startswith("checkpoint of 'up3' is not valid: ") and why in text
    assert str(db) in text and "remove" in text


def test_an_outbox_row_of_the_wrong_types_is_refused(tmp_path):
    db = tmp_path / "w.sqlite"
    CheckpointStore(db, fresh=True).close()
    with sqlite3.connect(db) as planted:
        planted.execute("INSERT INTO outbox VALUES ('out', 'sink', 'topic as text', 'x', 1, 'frame')")
    with pytest.raises(RuntimeFailure, match="checkpoint of the outbox of 'out' is not valid"):
        CheckpointStore(db, fresh=False).load()


# -- every component checks what it restores ---------------------------------------------------------
REGISTRY = default_registry()


def stateful_components():
    for kind in ("operator", "rule", "sink"):
        for name in REGISTRY.names(kind):
            if REGISTRY.get(kind, name).checkpoint:
                yield kind, name


def hooks(kind, name, nats_url=None):
    """The state hooks of a built-in component, or None if it keeps no state (the `nats` sink
    connects to the server at `nats_url`)."""
    component = REGISTRY.get(kind, name)
    if kind == "operator":
        params = operator_params(name, SAMPLES[name])
    elif name == "pattern":
        params = component.params.model_validate({"pattern": [{"name": "a"}]})
    elif kind == "sink":
        params = component.params.model_validate({"jsonl": {"path": "/dev/null"},
                                                  "positions": {"journal": "/dev/null"},
                                                  "nats": {"url": nats_url, "stream": "STATE"}}.get(name, {}))
    else:
        params = component.params.model_validate({})
    declared = []
    built = component.factory(params, BuildContext(node=name, key="instrument",
                                                   keep_state_fn=lambda node, snap, rest: declared.append(rest)))
    if name == "nats":
        built.close()  # or its client would reconnect to the stopped server for the rest of the session
    return declared


@pytest.mark.parametrize("kind, name", list(stateful_components()))
@pytest.mark.parametrize("wrong", ["garbage", [["key", "state", "of", "nothing"]], -1.5])
def test_every_built_in_component_refuses_state_of_the_wrong_shape(kind, name, wrong, request):
    nats_url = request.getfixturevalue("nats_server").url if name == "nats" else None
    for restore in hooks(kind, name, nats_url):
        with pytest.raises(InvalidState):
            restore(wrong)


@pytest.mark.parametrize("broken", [
    lambda s: s["nodes"].append([0, 99, 0, -1]),            # an event that is not there
    lambda s: s["nodes"].append([0, 0, 0, 5]),              # a parent that comes later
    lambda s: s["keys"][0][1].append([99, 0, 0, 0]),        # an automaton state that is not there
    lambda s: s["nodes"].append([7, 0, 0, -1]),             # a step the pattern does not have
])
def test_a_matcher_refuses_a_snapshot_whose_references_do_not_hold(broken):
    matcher = Matcher(PATTERNS[0])
    for i, name in enumerate("aab"):
        matcher.feed("k", {"timestamp": i, "name": name})
    saved = decode_state(encode_state(matcher.snapshot()))
    assert saved["nodes"] and saved["keys"]
    broken(saved)
    with pytest.raises(InvalidState):
        Matcher(PATTERNS[0]).restore(saved)


# -- a planted checkpoint, a real restart ---------------------------------------------------------------
PIPELINE = """
version: 1
name: hostile
defaults: {delivery: exactly_once}
sources:
  ticks: {type: synthetic, instruments: 2, seed: 5, count: 20000, rate: 4000, speed: realtime}
rules:
  up3: {use: momentum, from: ticks, with: {count: 3, direction: both, quantity: 1}}
sinks:
  signals: {type: jsonl, from: up3, path: out/signals.jsonl}
"""


class KillAndPlant:
    """on_status: once the sink has signals, SIGKILL the strategy and plant `value` in its checkpoint
    before the supervisor restarts it."""

    def __init__(self, db: Path, value: bytes) -> None:
        self.db, self.value, self.pid = db, value, None

    def __call__(self, status) -> None:
        if self.pid is None and status.nodes()["signals"].received > 20:
            self.pid = status.pids["strategy"]
            os.kill(self.pid, 9)
            plant(self.db, self.value)


@pytest.mark.integration
@pytest.mark.parametrize("case", list(hostile_values(Path("m"))))
def test_a_worker_restarted_on_a_planted_checkpoint_refuses_it_and_runs_nothing(workdir, case):
    marker = workdir / "marker"
    path = workdir / "pipeline.yaml"
    path.write_text(PIPELINE)
    plan = cep.compile(path)
    attack = KillAndPlant(Path(plan.run_dir) / "checkpoints" / "strategy.sqlite", hostile_values(marker)[case])
    with pytest.raises(RuntimeFailure) as refused:
        cep.run(plan, on_status=attack, backoff_s=0.05, max_restarts=1)
    assert attack.pid, "the sink never received a signal"
    assert not marker.exists()
    assert "checkpoint of 'up3' is not valid" in str(refused.value)
