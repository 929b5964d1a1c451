"""The pipeline as validated data: the envelope every component shares.

Validation happens in two passes (pydantic's advice for plugin-extended unions): this envelope
first, then each component's own `params` model, looked up in the registry by `type:` (or `use:`
for rules). Unknown keys are rejected in both. `Pipeline.locations` maps every key path to its
place in the YAML file, so any later stage (the compiler too) can point at the user's line.
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, WithJsonSchema, field_validator

from cep.errors import Location
from cep.plan import BATCH_SIZE, FRAME_SIZE, Delivery

DeliveryMode = Annotated[Delivery, WithJsonSchema({"enum": [mode.value for mode in Delivery], "type": "string"})]
"""`cep.plan.Delivery` in a model, described inline in the JSON schema (`cep schema`), as a list of names."""
Backpressure = Literal["block", "drop"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class Defaults(_Strict):
    """Pipeline-wide settings a component may override."""

    delivery: DeliveryMode = Field(Delivery.AT_MOST_ONCE, title="Delivery")  # the title a Literal had
    backpressure: Backpressure | None = None     # None: block for replays, drop for live sources
    batch_size: int = Field(BATCH_SIZE, ge=1, le=65536, description="records a source reads into one batch")
    frame_size: int = Field(FRAME_SIZE, ge=1, le=65536, description=(
        "the most records one frame between processes carries: a worker's output is cut into frames of "
        "at most this many (a reliable edge's window holds 1,000 frames per consumer worker)"))
    dead_letter: str = "out/deadletter.jsonl"     # relative to the pipeline file


class NatsOptions(_Strict):
    """The NATS servers (several comma-separated for a cluster), credentials (as ${ENV}), TLS
    files, and the limits of the pipeline's stream of edges (checked by `cep.compiler.nats`).
    One set per pipeline: given on the pipeline's `transport:` or on a node's, never two ways."""

    url: str | None = None
    token: str | None = None
    user: str | None = None
    password: str | None = None
    nkey: str | None = None     # a file holding the user's nkey seed
    creds: str | None = None    # a .creds file (the user's JWT and nkey seed)
    tls_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    replicas: int | None = None
    max_age: str | None = None
    max_bytes: str | int | None = None


class Transport(NatsOptions):
    """Where sockets live (loopback unless a host is given explicitly), or, with `kind: nats`,
    the NATS servers whose JetStream carries every edge (`cep.jetstream.edges`). Its NATS
    options also serve the nodes whose own `transport:` says `kind: nats` (`NodeTransport`)."""

    kind: Literal["ipc", "tcp", "nats"] = "ipc"
    dir: str | None = None       # ipc: directory of socket files (default: a per-pipeline tmp dir)
    host: str = "127.0.0.1"      # tcp: bind address
    base_port: int = Field(0, ge=0, le=65535)  # tcp: first port; 0 picks free ports at run time


class NodeTransport(NatsOptions):
    """What carries the records a stream, rule or source sends to other processes, or a sink
    receives from them (`cep.compiler.nats`): `nats` (a JetStream subject) or `zeromq` (the
    pipeline's sockets, ipc or tcp), whatever the pipeline's `transport:` says."""

    kind: Literal["nats", "zeromq"] = Field(description=(
        "nats: this node's edges are JetStream subjects; zeromq: ZeroMQ sockets even when the "
        "pipeline's transport is nats"))

    @field_validator("kind", mode="before")
    @classmethod
    def _node_kind(cls, value: Any) -> Any:
        if value in ("ipc", "tcp"):
            raise ValueError(f"{value} is not a node's transport: write kind: zeromq (whether ZeroMQ edges "
                             "are ipc or tcp is the pipeline's transport: kind), or kind: nats")
        return value


class Curve(_Strict):
    keys: str                    # directory made by `cep keys generate DIR`, relative to the pipeline file


class Security(_Strict):
    """What a pipeline's sockets accept (README "Security"; `cep.runtime.security`)."""

    curve: Curve | None = None   # tcp: CURVE encryption and authentication with these keys
    max_sequence_jump: int = Field(100_000, ge=1)  # frames a stream may skip before a receiver refuses them


class Metrics(_Strict):
    """Prometheus metrics of a running pipeline (`cep.observe.prometheus`), served on 127.0.0.1."""

    port: int = Field(ge=1, le=65535)


class Spec(_Strict):
    """A component in the pipeline: its id (the mapping key), type, and raw params.

    `params` holds every key that is not part of the envelope; the component's own model
    validates it (`config` is the validated instance, set by the loader).
    """

    id: str
    type: str
    params: dict[str, Any] = Field(default_factory=dict)
    config: Any = None


class SourceSpec(Spec):
    backpressure: Backpressure | None = None
    transport: NodeTransport | None = None


class OpSpec(_Strict):
    """One step of a stream's `ops:` list, e.g. `- filter: "ask_price > bid_price"`."""

    name: str
    args: Any = None
    config: Any = None
    index: int = 0


class StreamSpec(_Strict):
    id: str
    from_: tuple[str, ...] = Field(alias="from")
    key_by: str | None = None     # partition key field for keyed operators and parallelism
    ops: tuple[OpSpec, ...] = ()
    transport: NodeTransport | None = None


class RuleSpec(Spec):
    """`use: NAME` + `with: {...}` (registry rule or imported template), or an inline `pattern:`
    which the loader turns into `type: pattern` with the pattern keys as params."""

    from_: tuple[str, ...] = Field(alias="from")
    partition_by: str | None = "instrument"
    transport: NodeTransport | None = None


class SinkSpec(Spec):
    from_: tuple[str, ...] = Field(alias="from")
    delivery: DeliveryMode | None = None
    backpressure: Backpressure | None = None
    transport: NodeTransport | None = None


class VenueSpec(Spec):
    """A venue (exchange gateway): `type:` names a `venue` plugin (`paper` built in), `quotes:`
    the stream of quotes it matches against (the paper venue) or marks with; the rest are the
    venue type's own params."""

    quotes: str


class OrderSpec(_Strict):
    """An order executor: the signals it reads (`from:`), the venue it sends orders to, the
    quotes its checks price against (default: its venue's), and its settings (`config`, a
    validated `cep.orders.settings.ExecutorSettings`: risk limits, breaker, request timeouts)."""

    id: str
    from_: tuple[str, ...] = Field(alias="from")
    venue: str
    quotes: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    config: Any = None


class HostSpec(_Strict):
    """A machine of a multi-host pipeline (`cep.compiler.hosts`): the address its bound sockets
    listen on and the first of the consecutive tcp ports they take (default: derived from the
    pipeline's name, so every host's `cep run --host` agrees without talking)."""

    address: str
    port: int | None = Field(None, ge=1, le=65000)


class DeploySpec(_Strict):
    parallelism: int = Field(1, ge=1, le=64)
    process: str | None = None    # put this node in the named process (grouping override)
    host: str | None = None       # run this node's process on the named host (`hosts:`)
    nice: int | None = Field(None, ge=0, le=19)  # its process's niceness (default: GATEWAY_NICE for gateways, else 0)


class Pipeline(_Strict):
    version: Literal[1] = 1
    name: str
    path: Path | None = None      # the file it came from; relative paths resolve against its dir
    imports: tuple[str, ...] = ()
    plugins: tuple[str, ...] = ()
    defaults: Defaults = Defaults()
    transport: Transport = Transport()
    security: Security = Security()
    metrics: Metrics | None = None
    hosts: dict[str, HostSpec] = Field(default_factory=dict)
    sources: dict[str, SourceSpec] = Field(default_factory=dict)
    streams: dict[str, StreamSpec] = Field(default_factory=dict)
    rules: dict[str, RuleSpec] = Field(default_factory=dict)
    sinks: dict[str, SinkSpec] = Field(default_factory=dict)
    venues: dict[str, VenueSpec] = Field(default_factory=dict)
    orders: dict[str, OrderSpec] = Field(default_factory=dict)
    deploy: dict[str, DeploySpec] = Field(default_factory=dict)

    _locations: dict[tuple, Location] = PrivateAttr(default_factory=dict)
    _registry: Any = PrivateAttr(default=None)  # the Registry it was validated with (loader sets it)
    _problems: tuple = PrivateAttr(default=())  # what a deferred load found (see `load_pipeline`)
    _broken: frozenset = PrivateAttr(default=frozenset())  # ids left out for their own mistakes
    _warnings: tuple = PrivateAttr(default=())  # what the load found legal but likely not meant
    _unresolved: frozenset = PrivateAttr(default=frozenset())  # key paths naming an unset variable

    @property
    def base_dir(self) -> Path:
        return self.path.parent if self.path else Path.cwd()

    def locate(self, *path: Any) -> Location | None:
        """The YAML location of a key path, or of its nearest ancestor that has one."""
        key = tuple(path)
        while key:
            if key in self._locations:
                return self._locations[key]
            key = key[:-1]
        return self._locations.get((), None)
