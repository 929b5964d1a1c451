"""`cep test FILES...`: run the test cases of pipelines, rule libraries and test files.

Reports as pytest does: a line per case, then each failure with what differs, then the count.
Exit 0 when every case passes, 1 when one fails, 2 when a test file is malformed (every mistake
as `file:line:col: message (hint)`, and nothing runs).
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from cep.errors import UserError

EXAMPLES = """\b
Examples:
  cep test pipelines/*.yaml rules/*.yaml      # the tests: sections of pipelines and libraries
  cep test tests/cases/*.yaml -k breakout     # only cases whose name contains 'breakout'
\b
A case (see README "Testing pipelines"):
  tests:
    - name: five rising mids fire one BUY
      feed: quotes
      input:
        - [10:00:00, BTCUSDT, 100.0, 100.2]      # t, instrument, bid, ask
        - {t: +1s, bid: 100.1, ask: 100.3}
      expect:
        momentum5: [{action: BUY}]              # in order, these fields; or {count: 1}, []"""


@click.command("test", short_help="Run the test cases of pipelines and rule libraries.", epilog=EXAMPLES)
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("-k", "keyword", metavar="TEXT", help="Only the cases whose name contains TEXT.")
@click.option("--quiet", "-q", is_flag=True, help="No line per passing case.")
def test_command(files: tuple[Path, ...], keyword: str | None, quiet: bool) -> None:
    """Run the cases in FILES: each feeds events into one node of a pipeline (or one template of
    a rule library) on the inline runner and checks what nodes output. Exit 0 if all pass, 1 if
    one fails, 2 if a test file is malformed."""
    from cep.casetest import run_case
    started = time.perf_counter()
    cases = _load(files)
    selected = [case for case in cases if keyword is None or keyword in case.name]
    results = []
    for case in selected:
        result = run_case(case)
        results.append(result)
        if not (quiet and result.passed):
            click.echo(f"{case.id} {'PASSED' if result.passed else 'FAILED'}")
    if not results:
        click.echo(f"cep test: no case's name contains {keyword!r}", err=True)
    failed = [result for result in results if not result.passed]
    _report_failures(failed)
    counts = [f"{len(failed)} failed"] if failed else []
    counts.append(f"{len(results) - len(failed)} passed")
    if len(selected) < len(cases):
        counts.append(f"{len(cases) - len(selected)} deselected")
    click.echo(f"{', '.join(counts)} in {time.perf_counter() - started:.2f}s")
    if any(result.malformed for result in failed):
        sys.exit(2)
    if failed or not results:
        sys.exit(1)


def _load(files: tuple[Path, ...]) -> list:
    """Every case of every file; exit 2 after printing every mistake if a file has one."""
    from cep.casetest import load_cases
    cases, malformed = [], False
    for path in files:
        try:
            cases += load_cases(path)
        except UserError as exc:
            malformed = True
            for problem in exc.problems:
                click.echo(str(problem), err=True)
    if malformed:
        click.echo("cep test: mistakes in the test files; no case ran", err=True)
        sys.exit(2)
    return cases


def _report_failures(failed: list) -> None:
    if not failed:
        return
    click.echo("\n=== failures ===")
    for result in failed:
        where = f" ({result.case.location})" if result.case.location else ""
        click.echo(f"\n--- {result.case.id}{where}")
        for line in result.failures:
            click.echo(line)
    click.echo("")
