"""NATS JetStream, the durable log cep reads and records (DESIGN §4: edges that cross machines or
need a replayable log).

- `client`: nats-py (asyncio) driven from cep's synchronous workers through one event-loop
  thread per process, and the connection options a pipeline names (`NatsConnection`);
- `streams`: the JetStream streams cep creates or checks, and what `cep streams` lists;
- `frames`: records in messages, as the codec frames them (rows, msgpack), and read back once.

nats-py is optional (`pip install 'cep[nats]'`): nothing here imports it until a connection is
made, so pipelines without NATS never need it.
"""
