"""`cep top`: watch a running pipeline from another terminal (`cep.observe.top`)."""
from __future__ import annotations

import sys
from pathlib import Path

import click


@click.command(short_help="Watch a running pipeline: processes, nodes, edges, pattern rules.",
               epilog="""\b
Examples:
  cep top                                   # the only pipeline running (under $CEP_RUN_DIR or /tmp/cep-UID)
  cep top pipelines/momentum.yaml           # the run of that pipeline
  cep top /tmp/cep-1000/momentum --once     # one view on stdout, for scripts""")
@click.argument("target", required=False, type=click.Path(path_type=Path), metavar="[RUN_DIR | PIPELINE]")
@click.option("--host", metavar="NAME", help="With a PIPELINE run on several hosts: the run of this host "
              "(as cep run --host NAME).")
@click.option("--once", is_flag=True, help="Print the view once and exit (what it does when stdout is no terminal).")
def top(target: Path | None, host: str | None, once: bool) -> None:
    """Show a running pipeline, refreshed twice a second: each process's CPU, memory and restarts;
    each node's rates, drops and dead letters; each edge's queue, unacknowledged frames and lag in
    event time; each pattern rule's partial matches and the keys holding most of them. Read-only:
    it reads the status file the supervisor keeps in its run directory. q or Ctrl-C quits; exit 1
    when nothing runs there."""
    from cep.observe.top import current_status, render, run_dir_of, watch
    if host is not None and (target is None or not target.is_file()):
        raise click.UsageError("--host names a host of a PIPELINE file: give the file")
    run_dir = run_dir_of(target, host)
    snapshot = current_status(run_dir)
    on_terminal = sys.stdout.isatty()
    if once or not on_terminal:  # a view redrawn in place means nothing in a pipe or a file
        from rich.console import Console
        Console(width=None if on_terminal else 160).print(render(snapshot, run_dir))
        return
    try:
        ended = watch(run_dir)
    except KeyboardInterrupt:
        return
    if ended:
        click.echo(ended, err=True)
