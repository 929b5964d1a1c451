"""`cep test`: test cases for pipelines and rule libraries, written in YAML beside them.

A case feeds events into one node and says what nodes must output. It runs on the real loader,
compiler and inline runner (`cep.testing.run_inline`), so a passing case is what `cep run` does
with the same events. Cases live in a `tests:` section of a pipeline or rule library, or in a
file of their own (`pipeline: ../pipelines/momentum.yaml` + `tests:`)::

    tests:
      - name: five rising mids fire one BUY
        feed: quotes                    # a source (replaced by the input) or a stream, rule, sink
        instrument: BTCUSDT             # for events that do not name one
        input:                          # columns: t, instrument, bid, ask (or set columns:)
          - [10:00:00, BTCUSDT, 100.0, 100.2]
          - {t: 10:00:01, bid: 99.0, ask: 99.2}      # a mapping: any fields
          - {bid: 99.5, ask: 99.7}                   # no time: 1s (step:) after the last
          - advance: 5s                              # the clock moves, no event
          - [+250ms, BTCUSDT, 100.0, 100.2]          # 250 ms after the last event
        expect:
          momentum5: [{action: BUY, trigger_price: 100.2}]   # in order, these fields
          signals: {count: 1}
          quotes: {dropped: {}, dead_lettered: 0}

Expectations per node: a list (as many records, in order, each with at least the fields given;
`[]` for none), or a mapping of `records` (every field), `match` (as the list), `count`,
`dropped` (per reason, e.g. `partial_match_within`) and `dead_lettered`. Times: `10:00:01`
(on `date:`, default 1970-01-01), `+250ms`, ISO 8601, or integer nanoseconds; `t`, `bid`,
`ask` are short for timestamp, bid_price, ask_price in events and expectations alike.
`tests:` may also be a mapping of keys its cases share (`feed`, `columns`, `instrument`,
`date`, `step`, `rule`) and `cases:`. In a rule library, `rule: {use: NAME, with: {...}}`
(default: the only template) runs one template fed directly; expectations name it by NAME.

Event time moves only with events in cep (there are no watermarks): a `within` expires when a
later event of the key (or, for the pattern rule, of any key) comes past it, and the end of the
input ends the stream (windows flush; partial matches are dropped, except those waiting on a
trailing negated step, which are released). `advance:` leaves a gap before the next event.
"""
from cep.casetest.cases import BuiltCase, load_cases
from cep.casetest.run import Result, run_case

__all__ = ["BuiltCase", "Result", "load_cases", "run_case"]
