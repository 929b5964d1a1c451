"""The fault suite: workers SIGKILLed at random, alone and in volleys a few milliseconds apart, in
every delivery mode, on the shipped market data; every output line is compared with a fault-free
run's.

What each mode must show, per run:
- exactly_once: no signal lost, none duplicated, none unexpected, and the run ends by itself;
- at_least_once: the run ends; no signal is lost to a crash of the gateway or the sink; a crash of
  the strategy may lose a momentum streak in progress (README: a rule's state dies with its
  process under at_least_once), so at most one signal per instrument per strategy crash.
  Duplicates are allowed, and so are signals the fault-free run lacks: a restarted gateway sends
  again what was in flight, and the rule meets those ticks twice;
- at_most_once: the run ends and no signal is written twice (it may lose, and a rule meeting a
  gap may emit a signal the fault-free run lacks).

CI runs a short version (a pair and a triple of kills per mode). The soak runs by hand:

    CEP_SOAK=200 PYTHONPATH=$PWD python -m pytest -q tests/test_faults.py -k soak

Every run draws its kills from a seed; a failure prints it with the command that replays it
(`CEP_FAULT_SEED=<seed>` and the failing test; the soak then runs that seed every time).
"""
from __future__ import annotations

import json
import os
import random
from collections import Counter
from dataclasses import dataclass, field

import pytest

import cep
from cep.plan import Plan
from tests.support import SHIPPED_TICKS, kill_at

pytestmark = pytest.mark.integration

MODES = ("exactly_once", "at_least_once", "at_most_once")
INSTRUMENTS = 2  # in the shipped data
SPEED = "200x"  # the shipped ticks then take about 3.3 s: kills land mid-run
KILL_WINDOW_S = (0.3, 2.5)  # after the start, when volleys are fired
RUN_DEADLINE_S = 30.0  # a run still going this long after its last kill hangs (it takes ~4 s)

PIPELINE = """
version: 1
name: faults
defaults: {{delivery: {mode}}}
sources:
  ticks: {{type: csv, path: {ticks}, speed: {speed}}}
streams:
  quotes:
    from: ticks
    ops:
      - filter: "ask_price > bid_price"
      - map: {{mid: "(bid_price + ask_price) / 2"}}
rules:
  momentum5:
    use: momentum
    from: quotes
    partition_by: instrument
    with: {{count: 5, direction: both, quantity: 100}}
sinks:
  signals: {{type: jsonl, from: [momentum5], path: out/signals.jsonl}}
deploy: {{momentum5: {{parallelism: {parallelism}}}}}
"""


def write_pipeline(directory, mode: str, parallelism: int = 1, speed: str = SPEED):
    path = directory / "faults.yaml"
    path.write_text(PIPELINE.format(mode=mode, ticks=SHIPPED_TICKS, speed=speed, parallelism=parallelism))
    return path


def output_lines(directory) -> Counter:
    with open(directory / "out" / "signals.jsonl", encoding="utf-8") as file:
        return Counter(file.read().splitlines())


@pytest.fixture(scope="module")
def fault_free(tmp_path_factory) -> Counter:
    """Every signal line of the pipeline, from an inline run (the same in every mode)."""
    directory = tmp_path_factory.mktemp("reference")
    cep.run(cep.compile(write_pipeline(directory, "at_most_once", speed="max")), inline=True)
    reference = output_lines(directory)
    assert sum(reference.values()) == 629
    return reference


# -- scenarios --------------------------------------------------------------------------------
@dataclass
class Volley:
    """SIGKILL `victims` one after another, `gaps_ms` apart, `at_s` after the pipeline started."""

    at_s: float
    victims: list[str]
    gaps_ms: list[float]


@dataclass
class Scenario:
    seed: int
    mode: str
    plan: Plan
    volleys: list[Volley] = field(default_factory=list)

    def __str__(self) -> str:
        shots = "; ".join(f"{v.at_s:.2f}s: {'+'.join(v.victims)} ({', '.join(f'{g:.1f}' for g in v.gaps_ms)} ms apart)"
                          for v in self.volleys)
        return f"seed {self.seed}, {self.mode}, {len(self.plan.workers())} workers: {shots}"


def draw(directory, seed: int, mode: str, sizes: list[int] | None = None,
         parallelism: int | None = None) -> Scenario:
    """The pipeline (strategy parallelism 1 or 2) and the kills of one run, all drawn from `seed`:
    volleys of `sizes` victims (random when None)."""
    rng = random.Random(seed)
    plan = cep.compile(write_pipeline(directory, mode, parallelism or rng.choice([1, 1, 2])))
    sizes = sizes or [rng.randint(1, 3) for _ in range(rng.randint(1, 3))]
    times = sorted(rng.uniform(*KILL_WINDOW_S) for _ in sizes)
    volleys = [Volley(at, rng.sample(plan.workers(), size), [rng.uniform(0, 5) for _ in range(size - 1)])
               for at, size in zip(times, sizes)]
    return Scenario(seed, mode, plan, volleys)


# -- one run under fire -------------------------------------------------------------------------
@dataclass
class Outcome:
    lost: int
    duplicated: int
    unexpected: int
    hung: bool
    strategy_crashes: int
    restarts: dict[str, int]


def run_under_fire(directory, scenario: Scenario, reference: Counter) -> Outcome:
    plan = scenario.plan
    _, status, hung = kill_at(plan, [(v.at_s, v.victims, v.gaps_ms) for v in scenario.volleys], RUN_DEADLINE_S,
                              drain_timeout_s=5.0)
    out = output_lines(directory)
    strategy_crashes = sum(plan.process_of_worker(victim)[0].role == "strategy"
                           for volley in scenario.volleys for victim in volley.victims)
    return Outcome(lost=sum((reference - out).values()),
                   duplicated=sum(count - 1 for line, count in out.items() if line in reference and count > 1),
                   unexpected=sum(count for line, count in out.items() if line not in reference),
                   hung=hung, strategy_crashes=strategy_crashes,
                   restarts=dict(status.restarts))


def check(outcome: Outcome, scenario: Scenario, request) -> None:
    soak = "CEP_SOAK=1 " if "soak" in request.node.name else ""
    where = (f"{scenario}: {outcome} (replay: CEP_FAULT_SEED={scenario.seed} {soak}"
             f"python -m pytest '{request.node.nodeid}')")
    assert not outcome.hung, f"the run hung: {where}"
    if scenario.mode == "exactly_once":
        assert (outcome.lost, outcome.duplicated, outcome.unexpected) == (0, 0, 0), where
    elif scenario.mode == "at_least_once":
        assert outcome.lost <= INSTRUMENTS * outcome.strategy_crashes, where
    else:
        assert outcome.duplicated == 0, where


def seed() -> int:
    return int(os.environ.get("CEP_FAULT_SEED") or random.randrange(1 << 32))


# -- the tests -----------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("size", [2, 3])
def test_workers_killed_within_milliseconds_of_each_other_restart_and_the_run_ends(workdir, fault_free, mode, size,
                                                                                   request):
    """Two or three workers SIGKILLed a few ms apart: each restarted worker is started again
    (it once waited forever for a `start` sent only when every other worker was ready)."""
    scenario = draw(workdir, seed(), mode, sizes=[size], parallelism=1)
    outcome = run_under_fire(workdir, scenario, fault_free)
    check(outcome, scenario, request)
    assert sum(outcome.restarts.values()) >= 1, scenario


@pytest.mark.skipif(not os.environ.get("CEP_SOAK"), reason="the soak runs by hand: CEP_SOAK=N (runs per mode)")
@pytest.mark.parametrize("mode", MODES)
def test_soak_random_kills(workdir, fault_free, mode, request):
    runs = int(os.environ["CEP_SOAK"])
    fixed = os.environ.get("CEP_FAULT_SEED")
    summary: Counter = Counter()
    for run in range(runs):
        scenario = draw(workdir, int(fixed) if fixed else random.randrange(1 << 32), mode)
        outcome = run_under_fire(workdir, scenario, fault_free)
        print(f"run {run + 1}/{runs}: {scenario}: lost {outcome.lost}, duplicated {outcome.duplicated}, "
              f"unexpected {outcome.unexpected}, restarts {outcome.restarts}", flush=True)
        check(outcome, scenario, request)
        summary.update(lost=outcome.lost, duplicated=outcome.duplicated, unexpected=outcome.unexpected)
    print(f"{mode}: {runs} runs, {json.dumps(dict(summary))}")
