"""`cep keys generate`: CURVE keys for pipelines on tcp (`cep.runtime.security`)."""
from __future__ import annotations

from pathlib import Path

import click

EXAMPLES = """\b
Examples:
  cep keys generate ~/.cep/keys                # then: security: {curve: {keys: ~/.cep/keys}}
  cep keys generate keys --host feed --host trade   # a keypair per host of a pipeline on several hosts"""


@click.group(short_help="Make CURVE keys for pipelines on tcp.", epilog=EXAMPLES)
def keys() -> None:
    """CURVE keys for pipelines on tcp (`security: {curve: {keys: DIR}}`): every tcp socket of
    the pipeline encrypts, and only peers with the pipeline's keys may connect."""


@keys.command("generate", short_help="Write a server and a client keypair, or one per host, into DIRECTORY.",
              epilog=EXAMPLES)
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--host", "hosts", metavar="NAME", multiple=True,
              help="A keypair for this host of a pipeline on several hosts (host-NAME.key, host-NAME.key_secret); "
                   "repeat for each host.")
def generate(directory: Path, hosts: tuple[str, ...]) -> None:
    """Write a server and a client keypair into DIRECTORY, or with --host a keypair per host
    (DIRECTORY 0700; secret files 0600), and say which file goes where. Never overwrites keys."""
    from cep.runtime.security import generate_keys
    written = generate_keys(directory, hosts)
    for path in written:
        click.echo(f"wrote {path}")
    if hosts:
        publics = sorted(str(path) for path in directory.glob("host-*.key"))
        click.echo(f"to every host: {', '.join(publics)}")
        for host in hosts:
            click.echo(f"to host {host} only: {directory / f'host-{host}.key_secret'}")
    click.echo(f"use them with: security: {{curve: {{keys: {directory}}}}}")
