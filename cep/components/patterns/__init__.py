"""The CEP pattern engine: Flink-CEP semantics as a library, independent of YAML.

`model` (Step, Pattern, validate_pattern), `view` (MatchView: what a condition sees), `buffer`
(the shared buffer of partial matches), `nfa` (the pattern compiled into Flink's automaton) and
`matcher` (Matcher: keyed matching, `within`, skip strategies, the partial-match cap).
`params` (PatternParams: the YAML surface, checked at load time), `emit` (what a match becomes)
and `rule` (the `pattern` rule that runs an inline pattern in a pipeline) wire it into pipelines.
"""
from cep.components.patterns.rule import pattern

__all__ = ["pattern"]
