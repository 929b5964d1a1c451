"""The `nats` source: a JetStream stream replayed from a sequence number or an event time, in
event time, so a backtest and a live strategy read the same log (the `nats` sink records one)."""
from __future__ import annotations

import time
from typing import Any, Iterator, Union

from pydantic import Field, field_validator, model_validator

from cep.components.base import BuildContext
from cep.components.sources.pacing import Resumable, Speed, paced_batches
from cep.durations import parse_duration
from cep.errors import CodecError, RuntimeFailure
from cep.jetstream.client import NatsConnection, close, connect, loop
from cep.jetstream.frames import Positions, event_time_range, read_message
from cep.jetstream.subjects import StreamName
from cep.orders.queries import parse_time
from cep.plugins.markers import source
from cep.rows import AnyBatch, Rows, as_records, items, like

RETRY_FOR_S = 30.0
"""How long the source keeps asking a server that fails (a cluster electing a new leader, a
server restarting) before the run fails."""


class NatsSourceParams(NatsConnection):
    """Read the records a `nats` sink (or any cep producer) wrote into a JetStream stream."""

    model_config = NatsConnection.model_config | {"populate_by_name": True}

    stream: StreamName = Field(description="the JetStream stream to read")
    subject: str | None = Field(None, description="only messages on this subject (wildcards "
                                                  "allowed; default: all of the stream's)")
    start: Union[int, str] = Field(
        "first", alias="from",
        description="first: the oldest message kept; a stream sequence number (1234); or an "
                    "event time, ISO 8601 (2024-08-08T10:00Z, UTC unless it names an offset): the "
                    "first record at or after it")
    follow: bool = Field(False, description="false: end at the last message there when the run "
                                            "starts (a backtest); true: go on with new ones (live)")
    speed: Speed = Field("max", description="replay pacing by event time: max | realtime | Nx")
    fetch: int = Field(256, ge=1, le=4096, description="messages asked for at once")
    poll_interval: str = Field("100ms", description="following: hand control back this often "
                                                    "while no message comes")

    @field_validator("start")
    @classmethod
    def _start(cls, value: int | str) -> int | str:
        if isinstance(value, int):
            if value < 1:
                raise ValueError("a stream sequence number starts at 1")
            return value
        if value.strip() != "first":
            try:
                parse_time(value)
            except ValueError:
                raise ValueError(f"expected first, a sequence number or an ISO 8601 time such as "
                                 f"2024-08-08T10:00Z, got {value!r}") from None
        return value.strip()

    @field_validator("poll_interval")
    @classmethod
    def _poll(cls, value: str) -> str:
        if parse_duration(value) <= 0:
            raise ValueError("must be a positive duration such as 100ms")
        return value

    @model_validator(mode="after")
    def _paced_replay_only(self) -> "NatsSourceParams":
        if self.follow and self.speed != "max":
            raise ValueError("speed paces a replay that ends; a followed stream delivers records "
                             "as they come: drop speed, or follow")
        return self

    @property
    def from_time(self) -> int | None:
        """The event time to start at, if `from` names one."""
        return parse_time(self.start) if isinstance(self.start, str) and self.start != "first" else None


class NatsSourceError(RuntimeFailure):
    """The stream is missing, or cannot be read from where `from` points."""

    restartable = False


class NatsSource(Resumable):
    """Replays the stream's messages in stream order, each frame's records as it holds them.

    Delivery: replayable (the same params read the same records while the stream keeps them),
    so it backs every delivery mode; a restart resumes after the records already emitted. A
    record a producer wrote twice (a restarted exactly_once `nats` sink) is read once
    (`cep.jetstream.frames.Positions`, counted as dropped `duplicate`). A message that is not a
    cep frame is dead-lettered; a frame only some records spoil loses those. `from` an event time
    finds the first message holding it by bisecting the stream (its records in event-time order,
    as a `nats` sink of one run writes them) and leaves out the records before it.
    """

    live = False
    replayable = True

    def __init__(self, params: NatsSourceParams, ctx: BuildContext) -> None:
        self._params = params
        self._ctx = ctx
        self._filter = params.subject or ">"
        self._client = connect(params, f"cep {ctx.node}")
        self._js = self._client.jetstream()
        self._positions = Positions()
        self._subscription: Any = None
        first, last = loop().call(self._bounds())
        self._next_seq = self._first_seq(first, last)
        self._end_seq = None if params.follow else last

    async def _bounds(self) -> tuple[int, int]:
        from nats.js.errors import NotFoundError
        try:
            info = await self._js.stream_info(self._params.stream)
        except NotFoundError:
            raise NatsSourceError(f"no stream {self._params.stream} on NATS at "
                                  f"{self._params.describe()} (cep streams lists cep's streams)") from None
        return info.state.first_seq, info.state.last_seq

    def _first_seq(self, first: int, last: int) -> int:
        start = self._params.start
        if isinstance(start, int):
            return max(start, first)
        at = self._params.from_time
        return first if at is None else loop().call(self._seek(first, last, at))

    async def _seek(self, low: int, last: int, at: int) -> int:
        """The first sequence number whose message holds a record at or after event time `at`
        (bisection: a message read per step)."""
        from nats.js.errors import NotFoundError
        high = last + 1
        while low < high:
            middle = (low + high) // 2
            try:
                message = await self._js.get_msg(self._params.stream, seq=middle,
                                                  subject=self._filter, next=True)
            except NotFoundError:
                high = middle
                continue
            if message.seq >= high:
                high = middle
                continue
            if self._last_time(message.data, message.seq) >= at:
                high = middle
            else:
                low = message.seq + 1
        return low

    def _last_time(self, data: bytes, seq: int) -> int:
        try:
            batch = read_message(data)[3]
        except CodecError as exc:
            raise NatsSourceError(f"stream {self._params.stream}: message {seq} is not a cep frame "
                                  f"({exc}), so from: cannot seek by event time: start from a "
                                  f"sequence number") from None
        last = event_time_range(batch)[1]
        if last is None:
            raise NatsSourceError(f"stream {self._params.stream}: the records of message {seq} have "
                                  f"no integer timestamp, so from: cannot seek by event time")
        return last

    # -- reading --------------------------------------------------------------------------------
    def batches(self) -> Iterator[AnyBatch]:
        frames = self._from_time(self._frames())
        if self._params.speed == "max":
            return self._skipped(frames)
        records = (record for batch in frames for record in as_records(batch))
        return paced_batches(records, self._ctx.batch_size, self._params.speed, skip=self._skip)

    def _skipped(self, frames: Iterator[AnyBatch]) -> Iterator[AnyBatch]:
        """`frames` less the first `_skip` records (emitted before a restart)."""
        skip = self._skip
        for batch in frames:
            if skip and len(batch):
                if len(batch) <= skip:
                    skip -= len(batch)
                    continue
                batch, skip = like(batch, items(batch)[skip:]), 0
            yield batch

    def _from_time(self, frames: Iterator[AnyBatch]) -> Iterator[AnyBatch]:
        """`frames`, less the records before `from` at the start (the message found by `_seek`
        may begin earlier)."""
        at = self._params.from_time
        for batch in frames:
            if at is not None and len(batch):
                kept = [record for record in as_records(batch) if record.get("timestamp", at) >= at]
                if not kept:
                    continue
                at = None
                batch = kept
            yield batch

    def _frames(self) -> Iterator[AnyBatch]:
        """Each message's new records; while following, an empty batch every poll interval
        without messages, so the worker can flush and honour a stop."""
        while self._end_seq is None or self._next_seq <= self._end_seq:
            messages = self._fetch()
            if messages is None:
                if self._end_seq is not None and self._nothing_pending():
                    return
                yield Rows((), [])
                continue
            for message in messages:
                seq = message.metadata.sequence.stream
                if self._end_seq is not None and seq > self._end_seq:
                    return
                self._next_seq = seq + 1
                batch = self._records(message.data, seq)
                if len(batch):
                    yield batch

    def _records(self, data: bytes, seq: int) -> AnyBatch:
        ctx = self._ctx
        try:
            producer, position, count, batch, refused = read_message(data)
        except CodecError as exc:
            ctx.dead_letter(f"stream {self._params.stream} message {seq}: {exc}", data[:4096])
            return []
        for reason, record in refused:
            ctx.dead_letter(f"stream {self._params.stream} message {seq}: {reason}", record)
        batch, repeated = self._positions.fresh(producer, position, count, batch)
        if repeated:
            ctx.counters.drop("duplicate", repeated)
        return batch

    def _fetch(self) -> list | None:
        """The next messages, or None when none came within the poll interval. A failing server
        is asked again (the subscription made anew from where reading got to) for
        `RETRY_FOR_S`, then the run fails."""
        from nats.errors import TimeoutError as NatsTimeout
        wait_s = parse_duration(self._params.poll_interval) / 1e9
        deadline = time.monotonic() + RETRY_FOR_S
        while True:
            try:
                if self._subscription is None:
                    self._subscription = loop().call(self._subscribe())
                return loop().call(self._subscription.fetch(self._params.fetch, timeout=wait_s))
            except (NatsTimeout, TimeoutError):
                return None
            except Exception as exc:  # the server went away, the consumer expired: start again
                self._subscription = None
                if time.monotonic() > deadline:
                    raise RuntimeFailure(f"reading stream {self._params.stream} from NATS at "
                                         f"{self._params.describe()} failed: {type(exc).__name__}: {exc}") from None
                time.sleep(wait_s)

    async def _subscribe(self) -> Any:
        from nats.js import api
        config = api.ConsumerConfig(deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE,
                                    opt_start_seq=self._next_seq, ack_policy=api.AckPolicy.NONE,
                                    inactive_threshold=60.0, mem_storage=True)
        return await self._js.pull_subscribe(self._filter, stream=self._params.stream, config=config)

    def _nothing_pending(self) -> bool:
        """A replay that got no message: whether the consumer has nothing left to deliver (the
        rest of the stream up to its end is on other subjects, or was deleted)."""
        try:
            info = loop().call(self._subscription.consumer_info())
        except Exception:  # the next fetch finds out what is wrong
            return False
        return info.num_pending == 0

    def close(self) -> None:
        if self._subscription is not None:
            try:
                loop().call(self._subscription.unsubscribe(), timeout=2)
            except Exception:  # the server may be gone; its consumer expires by itself
                pass
        close(self._client)


@source("nats", params=NatsSourceParams, replayable=True)
def nats_source(params: NatsSourceParams, ctx: BuildContext) -> NatsSource:
    """Replay a NATS JetStream stream from a sequence number or an event time, paced by event time.

    Replayable (any delivery mode); follow: true goes on with new messages. Needs nats-py
    (pip install 'cep[nats]').
    """
    return NatsSource(params, ctx)
