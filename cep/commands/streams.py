"""`cep streams [URL]`: cep's JetStream streams on a NATS server, with their sizes and the event
times of their first and last records."""
from __future__ import annotations

import json
import os
from dataclasses import asdict

import click

from cep.jetstream.client import DEFAULT_URL, NatsConnection, close, connect, loop
from cep.jetstream.streams import StreamSummary, list_streams
from cep.orders.queries import format_time

EXAMPLES = """\b
Examples:
  cep streams                                  # $NATS_URL, else nats://127.0.0.1:4222
  cep streams nats://user:secret@10.0.0.5:4222 --json
  cep streams --all                            # every stream, not only cep's"""


@click.command(short_help="List cep's NATS JetStream streams: sizes, first and last event times.",
               epilog=EXAMPLES)
@click.argument("url", required=False)
@click.option("--all", "everything", is_flag=True, help="Every stream on the server, not only cep's.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per stream and line.")
def streams(url: str | None, everything: bool, as_json: bool) -> None:
    """The streams cep created or records into (a subject under cep.) on the server at URL:
    messages, bytes, sequence numbers and the event times of their first and last records.
    Credentials go in the URL (nats://user:password@host, nats://token@host)."""
    connection = NatsConnection(url=url or os.environ.get("NATS_URL") or DEFAULT_URL)
    client = connect(connection, "cep streams")
    try:
        summaries = loop().call(list_streams(client.jetstream(), everything))
    finally:
        close(client)
    if as_json:
        for summary in summaries:
            click.echo(json.dumps(asdict(summary)))
        return
    if not summaries:
        more = "" if everything else " (--all lists every stream)"
        click.echo(f"no {'' if everything else 'cep '}streams on {connection.describe()}{more}")
        return
    for line in _table(summaries):
        click.echo(line)


def _table(summaries: list[StreamSummary]) -> list[str]:
    rows = [("stream", "messages", "bytes", "sequences", "first event", "last event", "subjects")]
    for s in summaries:
        rows.append((s.name, f"{s.messages:,}", _size(s.bytes),
                     f"{s.first_seq}..{s.last_seq}" if s.messages else "-",
                     _time(s.first_time), _time(s.last_time), " ".join(s.subjects)))
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]


def _time(timestamp: int | None) -> str:
    return "-" if timestamp is None else format_time(timestamp)


def _size(count: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if count < 1000 or unit == "GB":
            return f"{count:,} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000  # type: ignore[assignment]
    return f"{count} B"
