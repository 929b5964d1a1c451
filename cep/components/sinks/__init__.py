"""Built-in sinks: where records leave the engine. Each states the delivery it supports.

`encoding` holds the one JSON convention and the ZeroMQ message format the sinks (and the `zmq`
source) share.
"""
from cep.components.sinks.jsonl_file import jsonl_sink
from cep.components.sinks.null import null_sink
from cep.components.sinks.positions import positions_sink
from cep.components.sinks.stdout import stdout_sink
from cep.components.sinks.zmq_publisher import zmq_sink
from cep.components.sinks.nats_stream import nats_sink

__all__ = ["jsonl_sink", "nats_sink", "null_sink", "positions_sink", "stdout_sink", "zmq_sink"]
