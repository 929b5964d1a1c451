"""The CEP pattern engine: Flink-CEP semantics as a library, independent of YAML.

`model` (Step, Pattern, validate_pattern), `view` (MatchView: what a condition sees), `buffer`
(the shared buffer of partial matches), `nfa` (the pattern compiled into Flink's automaton) and
`matcher` (Matcher: keyed matching, `within`, skip strategies, the partial-match cap).
The rule factory that wires patterns into pipelines is exported here once it exists.
"""
__all__: list[str] = []
