"""The command line: run | validate | graph | replay | plugins.

User mistakes print `file:line:col: message (hint)` and exit 2; runtime failures exit 1; nothing
prints a traceback unless `CEP_DEBUG=1`.
"""
from __future__ import annotations

import json
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

import click

import cep
from cep.compiler.render import FORMATS
from cep.errors import CepError, ConfigError, UserError
from cep.runtime.metrics import STUCK_AFTER_S
from cep.runtime.processes import start_server


def main() -> None:
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(2)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except CepError as exc:
        _report(exc)
        sys.exit(exc.exit_code)
    except Exception as exc:  # a bug in cep, not the user's: say so briefly
        if os.environ.get("CEP_DEBUG"):
            raise
        click.echo(f"cep: internal error: {type(exc).__name__}: {exc} (rerun with CEP_DEBUG=1 for the traceback)",
                   err=True)
        sys.exit(1)


def _report(exc: CepError) -> None:
    if os.environ.get("CEP_DEBUG"):
        import traceback
        traceback.print_exception(exc)
    if isinstance(exc, UserError):
        for problem in exc.problems:
            click.echo(str(problem), err=True)
        return
    click.echo(f"cep: error: {exc}", err=True)
    cause = exc.__cause__
    if cause is not None and os.environ.get("CEP_DEBUG"):
        click.echo(str(cause), err=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"]}, epilog="""\b
Streams: stdout carries the records of a stdout sink and each command's
primary output (validate's verdicts, graph's text, the plugin list); live
status, warnings, errors and the run summary go to stderr, so
`cep run p.yaml | jq .` sees records only.
\b
Exit codes: 0 done; 1 a runtime failure, or more dead letters than
--max-dead-letters; 2 a mistake in the input (file:line:col and a hint);
130 stopped by Ctrl-C, 143 by SIGTERM (both drained first). CEP_DEBUG=1
adds tracebacks.""")
@click.version_option(package_name="cep")
def cli() -> None:
    """cep: declarative complex-event processing for event-driven trading.

    A YAML pipeline of sources, operator chains, rules and sinks is compiled into OS processes
    joined by ZeroMQ. `cep COMMAND --help` shows a command's options and examples.
    """


@dataclass(frozen=True)
class DeadLetterLimit:
    """`--max-dead-letters`: a count, or a percentage of the records the sources read."""

    text: str
    count: int | None = None
    percent: float | None = None

    def exceeded(self, dead: int, read: int) -> bool:
        if self.count is not None:
            return dead > self.count
        return dead > read * self.percent / 100


class _DeadLetterLimitType(click.ParamType):
    name = "N|P%"

    def convert(self, value, param, ctx) -> DeadLetterLimit:
        if isinstance(value, DeadLetterLimit):
            return value
        text = str(value).strip()
        if text.isdigit():
            return DeadLetterLimit(text, count=int(text))
        try:
            percent = float(text[:-1]) if text.endswith("%") else None
        except ValueError:
            percent = None
        if percent is None or not 0 <= percent <= 100:
            self.fail(f"{value!r} is not a limit: write N or P%, e.g. 0, 100 or 0.5%", param, ctx)
        return DeadLetterLimit(text, percent=percent)


class _SecondsType(click.ParamType):
    name = "DURATION"

    def convert(self, value, param, ctx) -> float:
        if isinstance(value, float):
            return value
        from cep.durations import parse_duration
        try:
            return parse_duration(value) / 1e9
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


@dataclass(frozen=True)
class Reporting:
    """What a run is judged by and where its summary goes, besides stderr."""

    max_dead_letters: DeadLetterLimit | None = None
    summary_json: Path | None = None
    stuck_after_s: float = STUCK_AFTER_S


def _reporting_options(command):
    """The options `run` and `replay` share for judging and reporting a run (Reporting's fields)."""
    options = [
        click.option("--stuck-after", "stuck_after_s", type=_SecondsType(), default="10s", show_default=True,
                     help="Report a worker as stuck (live view and summary) when it has sent nothing "
                          "for this long: one long computation, or blocked."),
        click.option("--max-dead-letters", type=_DeadLetterLimitType(), metavar="N|P%",
                     help="Exit 1 if the run dead-letters more than N records, or more than P% of "
                          "the records its sources read."),
        click.option("--summary-json", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
                     help="Also write the summary as JSON there: per node, edge and worker, dead "
                          "letters, the order executors and journals (`trading`), and the exit code "
                          "with its reason."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


@cli.command(short_help="Run a pipeline until its sources end; status on stderr.",
             epilog="""\b
Examples:
  cep run pipelines/momentum.yaml              # live table on a terminal, summary at the end
  cep run pipelines/synthetic.yaml -q          # the summary only
  cep run echo.yaml -q 2>/dev/null | jq .      # a stdout sink's records, nothing else
  cep run p.yaml --max-dead-letters 1% --summary-json run.json   # for scripts and CI""")
@click.argument("pipeline", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--inline", is_flag=True, help="Run every node in this process (no sockets).")
@click.option("--run-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Directory for ipc sockets (default: $CEP_RUN_DIR or /tmp/cep-UID/NAME).")
@click.option("--quiet", "-q", is_flag=True, help="No live status; the summary only.")
@click.option("--max-restarts", default=3, show_default=True, help="Restarts of a crashed worker before giving up.")
@click.option("--drain-timeout", type=click.FloatRange(min=0), metavar="SECONDS",
              help="How long Ctrl-C or SIGTERM waits for the drain before killing the workers (default 10).")
@click.option("--metrics-port", type=click.IntRange(1, 65535), metavar="PORT",
              help="Serve Prometheus metrics on 127.0.0.1:PORT while it runs (overrides metrics.port).")
@click.option("--host", metavar="NAME", help="Run only the processes deployed on this host of `hosts:` "
              "(run directory NAME@HOST unless --run-dir); the other hosts run theirs.")
@_reporting_options
def run(pipeline: Path, inline: bool, run_dir: Path | None, quiet: bool, max_restarts: int,
        drain_timeout: float | None, metrics_port: int | None, host: str | None, **reporting) -> None:
    """Run PIPELINE until its sources are exhausted; Ctrl-C or SIGTERM drains every process and
    stops. The live status and the summary go to stderr; stdout is left to the records of a
    stdout sink."""
    from cep.config import load_pipeline
    if not inline:
        start_server()  # it imports the worker's code while the pipeline compiles
    model = load_pipeline(pipeline, defer_errors=True)  # every problem in one report (cep.compile)
    plan = cep.compile(model, run_dir=run_dir)
    if host is not None:
        from cep.runtime.hostlink import host_plan
        from cep.runtime.security import host_problems
        if inline:
            raise UserError("--host runs one host's worker processes: drop --inline")
        plan = host_plan(plan, host, run_dir_given=run_dir is not None)
        if problems := host_problems(model, host):  # validate cannot know which machine it is on
            raise ConfigError(problems)
    _run_plan(plan, inline, quiet, max_restarts, Reporting(**reporting), drain_timeout, metrics_port, host)


def _run_plan(plan, inline: bool, quiet: bool, max_restarts: int, reporting: Reporting,
              drain_timeout: float | None = None, metrics_port: int | None = None, host: str | None = None) -> None:
    """Run, print the summary; exit 128 + the signal (130, 143) when Ctrl-C or SIGTERM stopped it,
    1 past --max-dead-letters."""
    from cep.runtime.deadletter import Rotation
    Rotation.from_environment()  # a bad CEP_DEAD_LETTERS_* is a mistake (exit 2) before any worker starts
    for warning in plan.warnings:
        click.echo(warning, err=True)
    if inline and (metrics_port or plan.metrics_port):
        click.echo("cep: warning: no metrics are served with --inline (the supervisor of worker processes "
                   "serves them)", err=True)
    try:
        if inline:
            status = cep.run(plan, inline=True)
        else:
            from cep.runtime.live import LiveStatus
            with LiveStatus(plan, enabled=not quiet, stuck_after_s=reporting.stuck_after_s) as live:
                options = {} if drain_timeout is None else {"drain_timeout_s": drain_timeout}
                options["metrics_port"] = metrics_port
                options["host"] = host
                status = cep.run(plan, on_status=live.update, max_restarts=max_restarts,
                                 on_notice=lambda text: click.echo(f"cep: {text}", err=True), **options)
    except CepError as exc:
        if reporting.summary_json is not None:
            _write_summary(reporting.summary_json, {"pipeline": plan.name,
                                                    "exit": {"code": exc.exit_code, "reason": str(exc)}})
        raise
    for line in status.summary_lines(stuck_after_s=reporting.stuck_after_s):
        click.echo(line, err=True)
    trading = {}
    if any(node.kind == "order" for node in plan.nodes.values()):
        from cep.orders.summary import trading_report, trading_summary  # signals, denials, breaker, PnL
        trading = {"trading": trading_report(plan, status, host)}
        for line in trading_summary(trading["trading"]):
            click.echo(line, err=True)
    code, reason = _exit_of(status, reporting.max_dead_letters)
    if reporting.summary_json is not None:
        _write_summary(reporting.summary_json, {**status.to_dict(stuck_after_s=reporting.stuck_after_s),
                                                **trading, "exit": {"code": code, "reason": reason}})
    if code == 1:
        click.echo(f"cep: error: {reason}", err=True)
    if code:
        sys.exit(code)


def _exit_of(status, max_dead_letters: DeadLetterLimit | None) -> tuple[int, str]:
    """(exit code, reason) of a run that finished: a signal that stopped it decides first."""
    if status.signal is not None:
        return 128 + status.signal, f"stopped by {signal.Signals(status.signal).name}"
    dead, read = status.dead_letters(), status.records_read()
    if max_dead_letters is not None and max_dead_letters.exceeded(dead, read):
        share = f" ({dead / read:.1%} of {read:,} records read)" if read else ""
        return 1, (f"{dead:,} dead letters{share} is more than --max-dead-letters {max_dead_letters.text}; "
                   f"they are in {status.dead_letter_path}")
    return 0, "done"


def _write_summary(path: Path, summary: dict) -> None:
    try:
        path.write_text(json.dumps(summary, indent=2) + "\n")
    except OSError as exc:
        click.echo(f"cep: cannot write the summary to {path}: {exc.strerror}", err=True)


@cli.command(short_help="Check pipelines and rule libraries; every problem at once.",
             epilog="""\b
Examples:
  cep validate pipelines/momentum.yaml
  cep validate pipelines/*.yaml rules/*.yaml   # rule libraries are recognised""")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
def validate(files: tuple[Path, ...]) -> None:
    """Check pipelines and rule libraries without running anything. Every problem is reported at
    once on stderr as `file:line:col: message (hint)`, warnings apart; each file's verdict and
    its edges go to stdout. Exit 2 if any file has an error."""
    from cep.config import load_rule_library
    failed = False
    for path in files:
        try:
            if _is_rule_library(path):
                load_rule_library(path)
                click.echo(f"{path}: ok (rule library)")
            else:
                plan = cep.compile(path)
                for warning in plan.warnings:
                    click.echo(warning, err=True)
                click.echo(f"{path}: ok ({len(plan.processes)} processes, {len(plan.edges)} socket edges)")
                for edge in plan.edges:
                    click.echo(f"  {edge.id}: {edge.pattern}{f' over nats {edge.subject}' if edge.subject else ''}, "
                               f"{edge.delivery}, backpressure {edge.backpressure}")
        except UserError as exc:
            failed = True
            _report(exc)
    if failed:
        sys.exit(2)


def _is_rule_library(path: Path) -> bool:
    """A rule library has `templates:` and no `name:` at the top level."""
    from cep.config import is_rule_library
    return is_rule_library(path)


@cli.command(short_help="Show the compiled topology: processes, sockets, delivery.",
             epilog="""\b
Examples:
  cep graph pipelines/momentum.yaml                  # text on stdout
  cep graph pipelines/momentum.yaml -f mermaid
  cep graph pipelines/momentum.yaml -o topology.dot  # the format follows the suffix
  cep graph pipelines/momentum.yaml -o topology.svg  # drawn with Graphviz""")
@click.argument("pipeline", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--format", "-f", "fmt", type=click.Choice(FORMATS),
              help="text | dot | mermaid | json  [default: text, or what the suffix of --output names]")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path),
              help="Write there instead of stdout: .txt .dot .gv .mmd .json by suffix; .svg .png .pdf "
                   "drawn with Graphviz's dot.")
def graph(pipeline: Path, fmt: str | None, output: Path | None) -> None:
    """Print the compiled topology: processes, nodes, sockets and delivery of every edge."""
    from cep.compiler.render import render, write
    plan = cep.compile(pipeline)
    if output is None:
        click.echo(render(plan, fmt or "text"), nl=False)
        return
    write(plan, output, fmt)
    click.echo(f"wrote {output}", err=True)


@cli.command(short_help="Replay historical ticks from a CSV file through a pipeline.",
             epilog="""\b
Examples:
  cep replay pipelines/momentum.yaml --data ticks.csv.gz
  cep replay pipelines/momentum.yaml --data ticks.csv.gz --speed 10x
  cep replay feeds.yaml --data eth.csv --source eth   # one of several sources""")
@click.argument("pipeline", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--data", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Historical ticks (CSV, .gz ok) to replay through the pipeline's source.")
@click.option("--source", "source_id", help="Which source to replace (default: the only one).")
@click.option("--speed", default="max", show_default=True, help="max | realtime | Nx (e.g. 10x)")
@click.option("--inline", is_flag=True, help="Run every node in this process.")
@click.option("--quiet", "-q", is_flag=True, help="No live status; the summary only.")
@click.option("--metrics-port", type=click.IntRange(1, 65535), metavar="PORT",
              help="Serve Prometheus metrics on 127.0.0.1:PORT while it runs (overrides metrics.port).")
@_reporting_options
def replay(pipeline: Path, data: Path, source_id: str | None, speed: str, inline: bool, quiet: bool,
           metrics_port: int | None, **reporting) -> None:
    """Replay historical ticks from DATA through PIPELINE in event time."""
    if not inline:
        start_server()
    from cep.config import load_pipeline
    from cep.config.overrides import replace_source
    model = load_pipeline(pipeline)
    model = replace_source(model, source_id, {"type": "csv", "path": str(data.resolve()), "speed": speed},
                           options={"path": f"--data {data}", "speed": f"--speed {speed}"})
    _run_plan(cep.compile(model), inline, quiet, 3, Reporting(**reporting), metrics_port=metrics_port)


@cli.command(short_help="List sources, operators, rules and sinks with their parameters.",
             epilog="""\b
Examples:
  cep plugins                                  # every built-in and installed plugin
  cep plugins --kind operator
  cep plugins pipelines/vwap.yaml              # also the local plugins a pipeline loads""")
@click.argument("pipeline", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--kind", type=click.Choice(["source", "operator", "rule", "sink", "venue"]), help="Only this kind.")
def plugins(pipeline: Path | None, kind: str | None) -> None:
    """List every source, operator, rule and sink with its parameters (built-ins and plugins);
    with PIPELINE, also the local plugin modules it loads."""
    from cep.plugins import default_registry
    from cep.plugins.describe import describe
    if pipeline is None:
        registry = default_registry()
    else:
        from cep.config import load_pipeline, pipeline_registry
        registry = pipeline_registry(load_pipeline(pipeline))
    for line in describe(registry, kind):
        click.echo(line)


@cli.command(short_help="Positions from an order journal, now or as of a time.", epilog="""\b
Examples:
  cep positions out/trading-journal.db         # quantity, average cost, realized PnL (and
                                               # unrealized, as of the latest quotes it keeps)
  cep positions out/trading-journal.db --at 2024-08-08T23:55:00Z --json""")
@click.argument("journal", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="One JSON object per instrument and line.")
@click.option("--at", help="Only fills up to this event time: nanoseconds since the epoch or ISO 8601 "
                           "(UTC unless it names an offset).")
def positions(journal: Path, as_json: bool, at: str | None) -> None:
    """Positions the fills in JOURNAL add up to (read-only: safe while a pipeline writes it)."""
    import json
    from cep.orders.queries import parse_time, positions_report, render_positions
    try:
        until = None if at is None else parse_time(at)
    except ValueError:
        raise click.BadParameter(f"{at!r} is neither nanoseconds nor an ISO 8601 time "
                                 "(e.g. 2024-08-08T23:55:00Z)", param_hint="--at") from None
    rows = positions_report(journal, until)
    for line in ([json.dumps(row) for row in rows] if as_json else render_positions(rows)):
        click.echo(line)


@cli.command(short_help="Orders in an order journal, or one order's history.", epilog="""\b
Examples:
  cep orders out/trading-journal.db            # each order's latest state
  cep orders out/trading-journal.db --signal 'momentum5:ETHUSDT:1723161254385738067:SELL'""")
@click.argument("journal", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--signal", "signal_id", help="Every event of the order placed for this signal id.")
@click.option("--order", "client_order_id", help="Every event of the order with this client order id.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per event and line.")
def orders(journal: Path, signal_id: str | None, client_order_id: str | None, as_json: bool) -> None:
    """The orders in JOURNAL (read-only: safe while a pipeline writes it)."""
    import json
    from cep.orders.queries import latest_per_order, order_history, render_history, render_orders
    if signal_id is not None and client_order_id is not None:
        raise click.UsageError("give --signal ID or --order COID, not both (each names one order)")
    one = signal_id is not None or client_order_id is not None
    events = (order_history(journal, signal_id=signal_id, client_order_id=client_order_id) if one
              else latest_per_order(journal))
    if as_json:
        lines = [json.dumps(event.to_record()) for event in events]
    else:
        lines = render_history(events) if one else render_orders(events)
    for line in lines:
        click.echo(line)


from cep.commands.test import test_command  # noqa: E402  (commands in modules of their own)
cli.add_command(test_command)
from cep.commands.streams import streams  # noqa: E402
cli.add_command(streams)
from cep.commands.schema import schema_command  # noqa: E402
cli.add_command(schema_command)
from cep.commands.dlq import dlq  # noqa: E402
cli.add_command(dlq)

from cep.commands.top import top  # noqa: E402
cli.add_command(top)
from cep.commands.keys import keys  # noqa: E402
cli.add_command(keys)

if __name__ == "__main__":
    main()
