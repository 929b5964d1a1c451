"""The `pattern` rule through the YAML surface: a jsonl source of hand-written events, the inline
runner, PatternMatch / TradingSignal / Record outputs, dead letters, and load-time validation."""
import json

import pytest

import cep
from cep.errors import ConfigError

PIPELINE = """
version: 1
name: pattern-test
sources:
  events: {{type: jsonl, path: events.jsonl, time_field: timestamp, time_unit: ns}}
rules:
  matches:
    from: events
{rule}
sinks:
  out: {{type: jsonl, from: [matches], path: out.jsonl}}
"""


def run(workdir, rule: str, events: list[dict]) -> tuple[list[dict], object]:
    """Run `rule` (YAML lines under the rule id) over `events` inline; the output records."""
    with open(workdir / "events.jsonl", "w") as file:
        for record in events:
            file.write(json.dumps(record) + "\n")
    path = workdir / "pipeline.yaml"
    path.write_text(PIPELINE.format(rule=rule))
    status = cep.run(cep.compile(path), inline=True)
    with open(workdir / "out.jsonl") as file:
        return [json.loads(line) for line in file], status


def letters(spec: str, key: str = "k") -> list[dict]:
    """Events from "a1 c b2": kind a, id a1..., one ms apart, all of one instrument."""
    return [{"timestamp": (i + 1) * 1_000_000, "instrument": key, "kind": token[0], "id": token}
            for i, token in enumerate(spec.split())]


def ids(outputs: list[dict]) -> list[tuple]:
    return sorted(tuple(tuple(e["id"] for e in events) for events in out["match"].values())
                  for out in outputs)


A_THEN_B = """    pattern:
      - {{name: a, where: "kind == 'a'"}}
      - {{name: b, where: "kind == 'b'", contiguity: {contiguity}}}"""


@pytest.mark.parametrize("contiguity, expected", [
    ("strict", []),                                   # c separates a1 and b1
    ("relaxed", [(("a1",), ("b1",))]),
    ("any", [(("a1",), ("b1",)), (("a1",), ("b2",))]),
])
def test_contiguity_of_flinks_a_c_b1_b2_example(workdir, contiguity, expected):
    outputs, _ = run(workdir, A_THEN_B.format(contiguity=contiguity), letters("a1 c b1 b2"))
    assert ids(outputs) == expected


def test_pattern_match_record_carries_rule_key_last_timestamp_and_every_field(workdir):
    outputs, status = run(workdir, A_THEN_B.format(contiguity="relaxed"), letters("a1 b1"))
    assert outputs == [{"rule": "matches", "key": "k", "timestamp": 2_000_000,
                        "match": {"a": [letters("a1 b1")[0]], "b": [letters("a1 b1")[1]]}}]
    assert status.nodes()["matches"].emitted == 1


LOOP_THEN_C = """    skip: {skip}
    pattern:
      - {{name: b, where: "kind == 'b'", one_or_more: true, greedy: true}}
      - {{name: c, where: "kind == 'c'"}}"""


@pytest.mark.parametrize("skip, expected", [
    # Flink's skip-strategy table: pattern `b+ c` (greedy b+) over b1 b2 b3 c
    ("no_skip", [("b1", "b2", "b3"), ("b2", "b3"), ("b3",)]),
    ("skip_to_next", [("b1", "b2", "b3"), ("b2", "b3"), ("b3",)]),
    ("skip_past_last_event", [("b1", "b2", "b3")]),
    ("skip_to_first:b", [("b1", "b2", "b3"), ("b2", "b3"), ("b3",)]),
    ("skip_to_last:b", [("b1", "b2", "b3"), ("b3",)]),
])
def test_skip_strategies_of_flinks_b_plus_c_table(workdir, skip, expected):
    outputs, _ = run(workdir, LOOP_THEN_C.format(skip=skip), letters("b1 b2 b3 c1"))
    found = [tuple(e["id"] for e in out["match"]["b"]) for out in outputs]
    assert found == expected
    assert all([e["id"] for e in out["match"]["c"]] == ["c1"] for out in outputs)


def test_keys_match_independently(workdir):
    events = sorted(letters("a1 b1", key="x") + letters("a2 c b2", key="y"),
                    key=lambda e: e["timestamp"])
    rule = "    partition_by: instrument\n" + A_THEN_B.format(contiguity="strict")
    outputs, _ = run(workdir, rule, events)
    assert [(out["key"], ids([out])) for out in outputs] == [("x", [(("a1",), ("b1",))])]


def test_trailing_not_followed_by_is_released_when_the_window_closes(workdir):
    rule = """    within: 5ms
    pattern:
      - {name: a, where: "kind == 'a'"}
      - {name: b, where: "kind == 'b'"}
      - {name: c, where: "kind == 'c'", negated: true}"""
    outputs, _ = run(workdir, rule, letters("a1 b1 c1 a2 b2 x x x x x x"))
    assert ids(outputs) == [(("a2",), ("b2",))]


def test_a_failing_condition_dead_letters_the_record_and_matching_goes_on(workdir):
    events = letters("a1 b1 a2 b2")
    del events[1]["kind"]  # `kind == 'b'` raises KeyError on this one
    outputs, status = run(workdir, A_THEN_B.format(contiguity="relaxed"), events)
    assert ids(outputs) == [(("a1",), ("b2",)), (("a2",), ("b2",))]
    assert status.nodes()["matches"].dead_lettered >= 1


def test_partial_matches_over_the_cap_are_counted_as_drops(workdir):
    rule = """    max_partials: 2
    pattern:
      - {name: a, where: "kind == 'a'"}
      - {name: b, where: "kind == 'b'"}"""
    outputs, status = run(workdir, rule, letters("a1 a2 a3 a4 b1"))
    assert ids(outputs) == [(("a1",), ("b1",)), (("a2",), ("b1",))]
    assert status.nodes()["matches"].dropped == 2


def test_emit_trading_signal_binds_single_steps_as_records_and_loops_as_lists(workdir):
    rule = """    pattern:
      - {name: dip, where: "mid < 10"}
      - {name: up, where: "mid > (dip.mid if prev is None else prev.mid)", times: 2,
         consecutive: true, contiguity: strict}
    emit: {action: BUY, trigger_price: "up[-1].ask_price", quantity: 5,
           confidence: "(up[-1].mid - dip.mid) * len(up)"}"""
    events = [{"timestamp": t, "instrument": "BTC", "mid": mid, "ask_price": mid + 0.5}
              for t, mid in enumerate([12, 9, 9.5, 10], start=1)]
    outputs, _ = run(workdir, rule, events)
    assert outputs == [{"signal_id": "matches:BTC:4:BUY", "timestamp": 4, "action": "BUY",
                        "instrument": "BTC", "trigger_price": 10.5, "quantity": 5.0,
                        "strategy_name": "matches", "confidence": 1.0}]  # 2.0, clamped


def test_emit_record_evaluates_each_value_and_adds_the_timestamp(workdir):
    rule = """    pattern:
      - {name: a, where: "kind == 'a'"}
      - {name: b, where: "kind == 'b'"}
    emit: {type: Record, first: "a.id", last: "id", gap: "b.timestamp - a.timestamp", n: 7}"""
    outputs, _ = run(workdir, rule, letters("a1 b1"))
    assert outputs == [{"first": "a1", "last": "b1", "gap": 1_000_000, "n": 7,
                        "timestamp": 2_000_000}]


# -- validation at load time -------------------------------------------------------------------
def problems_of(workdir, rule: str) -> list[str]:
    path = workdir / "pipeline.yaml"
    path.write_text(PIPELINE.format(rule=rule))
    (workdir / "events.jsonl").write_text("")
    with pytest.raises(ConfigError) as caught:
        cep.compile(path)
    return [str(problem) for problem in caught.value.problems]


def test_a_pattern_ending_in_not_followed_by_needs_within(workdir):
    rule = """    pattern:
      - {name: a, where: "kind == 'a'"}
      - {name: c, where: "kind == 'c'", negated: true}"""
    (problem,) = problems_of(workdir, rule)
    assert problem.startswith(f"{workdir / 'pipeline.yaml'}:11:")
    assert "ends in a negated step 'c' (notFollowedBy) but has no within" in problem


def test_a_negated_step_cannot_follow_an_optional_one(workdir):
    rule = """    within: 1s
    pattern:
      - {name: a, where: "kind == 'a'"}
      - {name: b, where: "kind == 'b'", optional: true}
      - {name: c, where: "kind == 'c'", negated: true}
      - {name: d, where: "kind == 'd'"}"""
    (problem,) = problems_of(workdir, rule)
    assert problem.startswith(f"{workdir / 'pipeline.yaml'}:13:")
    assert "step 'c': a negated step cannot follow an optional step" in problem


def test_expression_errors_point_at_the_step_key_and_all_are_reported(workdir):
    rule = """    pattern:
      - {name: a, where: "kind =="}
      - {name: b, until: "__import__('os')", one_or_more: true}
    emit: {action: BUY, trigger_price: "a.price +", confidence: 1}"""
    problems = problems_of(workdir, rule)
    assert len(problems) == 3
    assert "pattern[0].where: expression 'kind ==': invalid syntax" in problems[0]
    assert "names starting with '__' are refused" in problems[1]
    assert "emit.trigger_price: expression 'a.price +'" in problems[2]


def test_unknown_step_keys_and_skip_steps_are_rejected(workdir):
    rule = """    skip: skip_to_last:nothing
    pattern:
      - {name: a, wher: "kind == 'a'"}"""
    problems = problems_of(workdir, rule)
    assert any("unknown key 'wher'" in p for p in problems)
