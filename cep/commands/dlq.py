"""`cep dlq [WHERE] list | show N | records | replay --to PIPELINE`: what was dead-lettered, why,
and feeding fixed records back in.

WHERE names the dead letters: a pipeline file (its `defaults.dead_letter`, `out/deadletter.jsonl`
beside it by default), a dead-letter file, the run directory of a running pipeline (its status
file names the file), or a directory holding `deadletter.jsonl` or `out/deadletter.jsonl`
(default: the current one). Letters are numbered from the oldest kept, over the rotated files
too, as `list` shows them.

Replaying goes through a records file: JSON Lines, one record per line, `#` lines ignored.
`records` writes one (a letter whose raw input is not a record, such as a CSV line or the bytes
of a frame, becomes a `#` line showing it, to rewrite as a record by hand); `replay` runs the
target pipeline with its source replaced by those records (through the `jsonl` source, so each
needs an integer `timestamp` in ns), from the letters chosen, from `--records FILE`, or from
what you save in your editor with `--edit`.
"""
from __future__ import annotations

import datetime as dt
import json
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterable

import click

from cep.errors import ConfigError, Location, Problem, RuntimeFailure
from cep.runtime.deadletter import DeadLetterFiles, Letter, Reading, dead_letter_files, read_letters

EXAMPLES = """\b
Examples:
  cep dlq pipelines/momentum.yaml list          # number, time, node, worker, reason
  cep dlq out/deadletter.jsonl show 3           # one letter in full, raw input included
  cep dlq pipelines/p.yaml records --node ticks -o fixed.jsonl   # then edit fixed.jsonl
  cep dlq replay --to pipelines/p.yaml --records fixed.jsonl
  cep dlq pipelines/p.yaml replay --to pipelines/p.yaml --edit 4 5   # edit, save, replay"""
REASON_WIDTH = 80


class _WhereFirst(click.Group):
    """`cep dlq list` means `cep dlq . list`: WHERE may be left out before the command."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] in self.commands:
            args = [".", *args]
        return super().parse_args(ctx, args)


@click.group("dlq", cls=_WhereFirst, short_help="See dead letters, and replay fixed records.", epilog=EXAMPLES)
@click.argument("where", type=click.Path(path_type=Path), metavar="[PIPELINE | FILE | RUN_DIR]")
@click.pass_context
def dlq(ctx: click.Context, where: Path) -> None:
    """What was dead-lettered, why (node, reason, time), and feeding fixed records back into a
    pipeline's source. WHERE is a pipeline file, a dead-letter file, or a directory (a running
    pipeline's run directory, or one holding deadletter.jsonl or out/deadletter.jsonl; default:
    the current directory)."""
    ctx.obj = where


def _files(where: Path) -> DeadLetterFiles:
    return dead_letter_files(dead_letter_path(where))


def dead_letter_path(where: Path) -> Path:
    """The dead-letter file WHERE names; ConfigError saying what was looked for if none."""
    if where.is_file():
        if where.suffix in (".yaml", ".yml"):
            from cep.config import load_pipeline
            pipeline = load_pipeline(where)
            return pipeline.base_dir / pipeline.defaults.dead_letter
        return where
    if where.is_dir():
        from cep.observe.statusfile import read_status
        status = read_status(where) if (where / "status.json").exists() else None
        if status is not None and isinstance(status.get("dead_letters"), dict):
            return Path(str(status["dead_letters"]["path"]))
        for candidate in (where / "deadletter.jsonl", where / "out" / "deadletter.jsonl"):
            if dead_letter_files(candidate).paths():
                return candidate
        raise ConfigError(Problem(f"no dead letters in {where}: neither deadletter.jsonl nor "
                                  "out/deadletter.jsonl, and no pipeline running there",
                                  hint="name the pipeline file or the dead-letter file"))
    raise ConfigError(Problem(f"{where}: no such file or directory",
                              hint="name a pipeline file, a dead-letter file or a run directory"))


def _chosen(files: DeadLetterFiles, numbers: Iterable[int], node: str | None,
            reading: Reading) -> list[Letter]:
    wanted = set(numbers)
    letters = [letter for letter in read_letters(files, reading)
               if (not wanted or letter.number in wanted) and (node is None or letter.node == node)]
    missing = wanted - {letter.number for letter in letters}
    if missing:
        raise ConfigError(Problem(f"no dead letter {', '.join(map(str, sorted(missing)))} in {files.path}"
                                  + (f" from node {node!r}" if node else ""),
                                  hint=f"`cep dlq {files.path} list` shows their numbers"))
    return letters


def _when(letter: Letter) -> str:
    if letter.time is None:
        return "?"
    return dt.datetime.fromtimestamp(letter.time, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _footer(files: DeadLetterFiles, count: int, reading: Reading) -> str:
    names = ", ".join(str(path) for path in files.paths()) or str(files.path)
    parts = [f"{count:,} dead letter{'s' * (count != 1)} in {names}"]
    if files.dropped_letters:
        parts.append(f"{files.dropped_letters:,} older ones dropped by rotation")
    if reading.unreadable:
        parts.append(f"{reading.unreadable:,} lines that are no dead letter skipped")
    return "; ".join(parts)


@dlq.command("list", short_help="One line per dead letter: number, time, node, worker, reason.")
@click.option("--node", help="Only the letters of this node.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per letter and line.")
@click.pass_obj
def list_letters(where: Path, node: str | None, as_json: bool) -> None:
    """List the dead letters, oldest first (times are when they were written, UTC)."""
    files, reading = _files(where), Reading()
    count = 0
    if not as_json:
        click.echo(f"{'#':>6}  {'time (UTC)':<23}  {'node':<16} {'worker':<18} reason")
    for letter in _chosen(files, (), node, reading):
        count += 1
        if as_json:
            click.echo(json.dumps(_as_dict(letter, with_raw=False)))
        else:
            reason = letter.reason if len(letter.reason) <= REASON_WIDTH else letter.reason[:REASON_WIDTH - 3] + "..."
            click.echo(f"{letter.number:>6}  {_when(letter):<23}  {letter.node:<16} {letter.worker:<18} {reason}")
    click.echo(_footer(files, count, reading), err=True)


def _as_dict(letter: Letter, with_raw: bool = True) -> dict[str, Any]:
    found = {"number": letter.number, "time": letter.time, "node": letter.node, "worker": letter.worker,
             "reason": letter.reason, "file": str(letter.file), "line": letter.line}
    return {**found, "raw": letter.raw} if with_raw else found


@dlq.command("show", short_help="Dead letters in full, raw input included.")
@click.argument("numbers", nargs=-1, required=True, type=click.IntRange(min=1))
@click.option("--json", "as_json", is_flag=True, help="One JSON object per letter and line.")
@click.pass_obj
def show(where: Path, numbers: tuple[int, ...], as_json: bool) -> None:
    """Show the dead letters NUMBERS (as `list` numbers them) in full."""
    for letter in _chosen(_files(where), numbers, None, Reading()):
        if as_json:
            click.echo(json.dumps(_as_dict(letter)))
            continue
        click.echo(f"dead letter {letter.number} ({letter.file}:{letter.line})")
        click.echo(f"  time:   {_when(letter)} UTC")
        click.echo(f"  node:   {letter.node} (worker {letter.worker})")
        click.echo(f"  reason: {letter.reason}")
        raw = json.dumps(letter.raw, indent=2)
        click.echo("  raw:    " + raw.replace("\n", "\n          "))


def records_text(letters: list[Letter]) -> str:
    """The records file of `letters`: a record per line; what is no record as a `#` line."""
    lines = ["# cep dlq records: one JSON record per line (each needs an integer timestamp, ns);",
             "# lines starting with # are ignored. Fix, delete or add lines, then replay them."]
    for letter in letters:
        record = _record_of(letter.raw)
        where = f"letter {letter.number} ({letter.node}: {letter.reason})"
        if record is None:
            lines.append(f"# {where} is no record, rewrite it as one: {json.dumps(letter.raw)}")
        else:
            lines.append(f"# {where}")
            lines.append(json.dumps(record))
    return "\n".join(lines) + "\n"


def _record_of(raw: Any) -> dict[str, Any] | None:
    """The record a letter holds: a mapping, or text that is a JSON object (a `jsonl` source's line)."""
    if isinstance(raw, dict) and "base64" not in raw:
        return raw
    if isinstance(raw, str):
        try:
            found = json.loads(raw)
        except ValueError:
            return None
        return found if isinstance(found, dict) else None
    return None


def parse_records(text: str, filename: str) -> list[dict[str, Any]]:
    """The records of a records file; ConfigError with every bad line at its place."""
    records, problems = [], []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        where = Location(filename, number, 1)
        try:
            record = json.loads(line)
        except ValueError as exc:
            problems.append(Problem(f"not JSON: {exc.msg}", where, "one JSON object per line"))
            continue
        if not isinstance(record, dict):
            problems.append(Problem("not a record (a JSON object)", where))
        elif isinstance(record.get("timestamp"), bool) or not isinstance(record.get("timestamp"), int):
            problems.append(Problem("no integer timestamp", where,
                                    "each record needs its event time as nanoseconds since the epoch"))
        else:
            records.append(record)
    if problems:
        raise ConfigError(problems)
    return records


@dlq.command("records", short_help="Write the letters' records as a file to fix and replay.")
@click.argument("numbers", nargs=-1, type=click.IntRange(min=1))
@click.option("--node", help="Only the letters of this node.")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), help="Write there, not to stdout.")
@click.pass_obj
def records(where: Path, numbers: tuple[int, ...], node: str | None, output: Path | None) -> None:
    """Write the records the dead letters NUMBERS (default: all) hold, one JSON line each, for
    `cep dlq replay --records FILE`; a letter that holds no record becomes a `#` line showing it."""
    text = records_text(_chosen(_files(where), numbers, node, Reading()))
    if output is None:
        click.echo(text, nl=False)
        return
    _write_private(output, text)
    click.echo(f"wrote {output}", err=True)


def _write_private(path: Path, text: str) -> None:
    """Dead letters hold raw input: a file of them is the user's alone (0600), as the letters are."""
    import os
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(text)
    except OSError as exc:
        raise RuntimeFailure(f"cannot write {path}: {exc.strerror}") from None


@dlq.command("replay", short_help="Feed fixed records into a pipeline's source and run it.", epilog=EXAMPLES)
@click.argument("numbers", nargs=-1, type=click.IntRange(min=1))
@click.option("--to", "target", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The pipeline to run with the records in place of its source.")
@click.option("--source", "source_id", help="Which source the records replace (default: the only one).")
@click.option("--node", help="Only the letters of this node.")
@click.option("--records", "records_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Replay this records file (from `cep dlq records`, fixed) instead of letters.")
@click.option("--edit", is_flag=True, help="Open the records in $EDITOR first; replay what you save.")
@click.option("--inline", is_flag=True, help="Run every node in this process.")
@click.option("--quiet", "-q", is_flag=True, help="No live status; the summary only.")
@click.pass_obj
def replay(where: Path, numbers: tuple[int, ...], target: Path, source_id: str | None, node: str | None,
           records_file: Path | None, edit: bool, inline: bool, quiet: bool) -> None:
    """Run the pipeline --to with its source replaced by the records of the dead letters NUMBERS
    (default: all; or of --records FILE), in event-time order as given. Its sinks write as in any
    run (a `truncate` jsonl sink starts its file afresh: point --to at a pipeline that appends, or
    writes elsewhere). Dead letters it makes go to its own dead-letter file."""
    text, filename = _replay_text(where, numbers, node, records_file)
    if edit:
        text = click.edit(text, extension=".jsonl", require_save=True)
        if text is None:
            click.echo("cep dlq: not saved: nothing replayed", err=True)
            sys.exit(1)
        filename = "<edited records>"
    chosen = parse_records(text, filename)
    if not chosen:
        raise ConfigError(Problem(f"{filename}: no records to replay",
                                  hint="letters that hold no record show as # lines: rewrite them as records"))
    click.echo(f"cep dlq: replaying {len(chosen):,} record{'s' * (len(chosen) != 1)} into {target}", err=True)
    _run_with_records(target, source_id, chosen, inline, quiet)


def _replay_text(where: Path, numbers: tuple[int, ...], node: str | None,
                 records_file: Path | None) -> tuple[str, str]:
    if records_file is None:
        return records_text(_chosen(_files(where), numbers, node, Reading())), "<dead letters>"
    if numbers or node:
        raise click.UsageError("--records replays a file: give no letter numbers or --node with it")
    try:
        return records_file.read_text(encoding="utf-8"), str(records_file)
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(Problem(f"{records_file}: cannot read the records: {getattr(exc, 'strerror', None) or exc}")) from None


def _run_with_records(target: Path, source_id: str | None, chosen: list[dict[str, Any]], inline: bool,
                      quiet: bool) -> None:
    """Run `target` with its source replaced by a `jsonl` source of `chosen`, as `cep replay`
    runs a pipeline with its source replaced by a data file."""
    import cep
    from cep.cli import Reporting, _run_plan
    from cep.config import load_pipeline
    from cep.config.overrides import replace_source
    from cep.runtime.processes import start_server
    if not inline:
        start_server()
    with tempfile.TemporaryDirectory(prefix="cep-dlq-") as scratch:  # 0700: the records are raw input
        path = Path(scratch) / "records.jsonl"
        path.write_text("".join(json.dumps(record) + "\n" for record in chosen), encoding="utf-8")
        model = replace_source(load_pipeline(target), source_id,
                               {"type": "jsonl", "path": str(path), "time_field": "timestamp", "time_unit": "ns"},
                               options={"path": "the records"})
        _run_plan(cep.compile(model), inline, quiet, 3, Reporting())
