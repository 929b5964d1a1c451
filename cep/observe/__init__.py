"""A running pipeline seen from outside.

Workers add how they stand now to the reports they send anyway (`gauges.py`); the supervisor
makes one snapshot of the run from them about twice a second (`snapshot.py`, `publisher.py`) and
publishes it to the status file in its run directory (`statusfile.py`), which `cep top` reads
(`top.py`), and, when a metrics port is set, to the Prometheus exporter (`prometheus.py`).
"""
