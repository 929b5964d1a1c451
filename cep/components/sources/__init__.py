"""Built-in sources: where records enter the engine, in batches, in event-time order.

Each states the delivery it supports: replays (csv, jsonl, synthetic) are finite and replayable;
the zmq subscriber is live. Replay pacing (`speed: max | realtime | 10x`) lives in `pacing`; what
the file replays share in `files`, the per-record checks of what a source lets in in `checks`,
event-time units in `event_time` (public modules, as everywhere in `cep.components`).
"""
from cep.components.sources.csv_file import csv_source
from cep.components.sources.jsonl_file import jsonl_source
from cep.components.sources.synthetic import synthetic_source
from cep.components.sources.zmq_subscriber import zmq_source
from cep.components.sources.nats_stream import nats_source

__all__ = ["csv_source", "jsonl_source", "nats_source", "synthetic_source", "zmq_source"]
