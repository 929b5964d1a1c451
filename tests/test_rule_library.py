"""The rule library: `rules/momentum.yaml` (momentum as a pattern) against the built-in Python
`momentum` rule, hand-computed and on the real Binance file, inline and as processes."""
import json

import pytest

import cep
from tests.support import ROOT, SHIPPED_TICKS

LIBRARY = ROOT / "rules" / "momentum.yaml"
PIPELINE = """
version: 1
name: {name}
{imports}
sources:
  ticks: {source}
streams:
  quotes:
    from: ticks
    ops:
      - filter: "ask_price > bid_price"
      - map: {{mid: "(bid_price + ask_price) / 2"}}
rules:
{rules}
sinks:
  out: {{type: jsonl, from: [{ids}], path: {name}.jsonl}}
{deploy}
"""


def pipeline(workdir, name: str, source: str, rules: dict[str, str], library: bool,
             deploy: str = ""):
    path = workdir / f"{name}.yaml"
    use = "momentum_pattern" if library else "momentum"  # the template, or the built-in rule
    path.write_text(PIPELINE.format(
        name=name, imports=f"imports: [{LIBRARY}]" if library else "", source=source,
        rules="\n".join(f"  {rid}: {{use: {use}, from: quotes, with: {args}}}"
                        for rid, args in rules.items()),
        ids=", ".join(rules), deploy=deploy))
    return cep.compile(path)


def signals(workdir, name: str) -> list[dict]:
    with open(workdir / f"{name}.jsonl") as file:
        return [json.loads(line) for line in file]


def comparable(signal: dict) -> tuple:
    """A signal without what names the rule node (ids differ between the two pipelines)."""
    return (signal["timestamp"], signal["action"], signal["instrument"],
            signal["trigger_price"], signal["quantity"], signal["confidence"])


def both_ways(workdir, source: str, count: int) -> tuple[set, set]:
    builtin = pipeline(workdir, "builtin", source,
                       {"m": f"{{count: {count}, direction: both, quantity: 100}}"}, False)
    library = pipeline(workdir, "library", source,
                       {"buy": f"{{count: {count}, action: BUY, quantity: 100}}",
                        "sell": f"{{count: {count}, action: SELL, quantity: 100}}"}, True)
    cep.run(builtin, inline=True)
    cep.run(library, inline=True)
    return ({comparable(s) for s in signals(workdir, "builtin")},
            {comparable(s) for s in signals(workdir, "library")})


def write_ticks(workdir, mids_by_key: dict[str, list[float]]) -> tuple[str, list[dict]]:
    ticks = []
    for key, mids in mids_by_key.items():
        for i, mid in enumerate(mids):
            ticks.append({"timestamp": 10 * i + (key == "B"), "instrument": key,
                          "bid_price": mid - 0.5, "ask_price": mid + 0.5, "mid": mid})
    ticks.sort(key=lambda t: t["timestamp"])
    with open(workdir / "ticks.jsonl", "w") as file:
        for tick in ticks:
            file.write(json.dumps({k: v for k, v in tick.items() if k != "mid"}) + "\n")
    return "{type: jsonl, path: ticks.jsonl, time_field: timestamp, time_unit: ns}", ticks


def test_hand_computed_streaks_equal_mids_ignored_falls_break(workdir):
    # A: 9 -> 10 (=10) -> 11 fires BUY at 11; 12 continues (no second signal); 11 breaks;
    #    11 -> 12 -> 13 fires again. B: 21 -> 20 -> 19 fires SELL at 19; (=19) -> 18 continues.
    source, _ = write_ticks(workdir, {"A": [10, 9, 10, 10, 11, 12, 11, 12, 13],
                                      "B": [19, 21, 20, 19, 19, 18]})
    library = pipeline(workdir, "library", source,
                       {"buy": "{count: 2, action: BUY, quantity: 3}",
                        "sell": "{count: 2, action: SELL, quantity: 3}"}, True)
    cep.run(library, inline=True)
    found = sorted((s["instrument"], s["timestamp"], s["action"], s["trigger_price"],
                    s["confidence"]) for s in signals(workdir, "library"))
    move = lambda start, end: abs(end - start) / start * 1e4  # noqa: E731
    confidence = lambda start, end: round(move(start, end) / (move(start, end) + 1), 6)  # noqa: E731
    assert found == [("A", 40, "BUY", 11.5, confidence(9, 11)),
                     ("A", 80, "BUY", 13.5, confidence(11, 13)),
                     ("B", 31, "SELL", 18.5, confidence(21, 19))]
    assert {s["signal_id"] for s in signals(workdir, "library")} >= {"buy:A:40:BUY"}


@pytest.mark.parametrize("seed", range(4))
def test_random_walks_give_exactly_the_built_in_rules_signals(workdir, seed):
    import random
    rng = random.Random(seed)
    walks = {}
    for key in "AB":
        mid, walk = 100.0, []
        for _ in range(300):
            mid += rng.choice((-1, 0, 0, 1))
            walk.append(mid)
        walks[key] = walk
    source, _ = write_ticks(workdir, walks)
    builtin, library = both_ways(workdir, source, count=3)
    assert library == builtin
    assert len(library) > 5


def test_real_data_gives_exactly_the_built_in_rules_629_signals(workdir):
    source = f"{{type: csv, path: {SHIPPED_TICKS}}}"
    builtin, library = both_ways(workdir, source, count=5)
    assert len(builtin) == 629
    assert library == builtin


@pytest.mark.integration
def test_the_library_rule_gives_the_same_signals_inline_and_as_two_parallel_workers(workdir):
    source = f"{{type: csv, path: {SHIPPED_TICKS}}}"
    plan = pipeline(workdir, "parallel", source, {"buy": "{count: 5, action: BUY}"}, True,
                    deploy="deploy: {buy: {parallelism: 2}}")
    strategy = next(p for p in plan.processes if p.role == "strategy")
    assert strategy.parallelism == 2 and strategy.partition_key == "instrument"
    cep.run(plan, inline=True)
    inline = sorted(signals(workdir, "parallel"), key=lambda s: s["signal_id"])
    status = cep.run(plan)
    assert status.restarts == {}
    assert sorted(signals(workdir, "parallel"), key=lambda s: s["signal_id"]) == inline
    assert len(inline) == 293
