"""Running one case on the inline runner (through `cep.testing.run_inline`) and judging it."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from cep.casetest.cases import BuiltCase
from cep.casetest.compare import problems
from cep.errors import CepError, UserError


@dataclass
class Result:
    """A case's verdict: what failed (empty when it passed), each line ready to print."""

    case: BuiltCase
    failures: list[str] = field(default_factory=list)
    malformed: bool = False         # the case's pipeline did not compile: a mistake, exit 2
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return not self.failures


def run_case(case: BuiltCase) -> Result:
    """Feed the case's events, run its pipeline to the end of its input, check every expectation."""
    from cep.testing import run_inline
    started = time.perf_counter()
    result = Result(case)
    try:
        outcome = run_inline(case.pipeline, inputs={case.source: case.events})
    except UserError as exc:
        result.malformed = True
        result.failures = [str(problem) for problem in exc.problems]
    except CepError as exc:
        result.failures = [f"the run failed: {exc}"]
    else:
        totals = outcome.status.nodes() if outcome.status is not None else {}
        for check in case.checks:
            node = totals.get(check.node)
            found = problems(check.spec, outcome[check.collected_by],
                             node.drops if node else {}, node.dead_lettered if node else 0)
            if found:
                where = f"{check.location}: " if check.location else ""
                result.failures.append(f"{where}expect.{check.node}: {found[0]}")
                result.failures += found[1:]
    result.seconds = time.perf_counter() - started
    return result
