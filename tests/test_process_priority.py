"""Gateways of replays run nicer than the processes after them (GATEWAY_NICE), a live feed's not; `deploy: {NODE: {nice: N}}`
sets a process's niceness instead."""
import os

import pytest

import cep
from cep.compiler.placement import GATEWAY_NICE
from cep.errors import ConfigError

PIPELINE = """
version: 1
name: priority
sources:
  ticks: {{type: synthetic, instruments: 2, seed: 1, count: {count}, rate: 2000, speed: realtime}}
rules:
  up: {{use: momentum, from: ticks, with: {{count: 2, direction: up, quantity: 1}}}}
sinks:
  out: {{type: "null", from: [up]}}
{deploy}
"""


def compile_with(workdir, deploy="", count=100):
    path = workdir / "p.yaml"
    path.write_text(PIPELINE.format(deploy=deploy, count=count))
    return cep.compile(path)


def niceness(plan):
    return {process.name: process.nice for process in plan.processes}


def test_gateways_are_nicer_than_the_rest_by_default(workdir):
    assert niceness(compile_with(workdir)) == {"gateway-ticks": GATEWAY_NICE, "strategy": 0, "sink-out": 0}


def test_a_live_feeds_gateway_keeps_its_priority(workdir):
    """Starved, a live gateway would lose ticks at the publisher, where nothing counts them."""
    path = workdir / "live.yaml"
    path.write_text(PIPELINE.format(deploy="", count=100).replace(
        "{type: synthetic, instruments: 2, seed: 1, count: 100, rate: 2000, speed: realtime}",
        "{type: zmq, endpoint: 'tcp://127.0.0.1:5599'}"))
    plan = cep.compile(path)
    assert niceness(plan)["gateway-ticks"] == 0
    assert {edge.backpressure for edge in plan.edges if edge.node == "ticks"} == {"drop"}  # never stall a feed


def test_deploy_sets_the_niceness_of_a_nodes_process(workdir):
    plan = compile_with(workdir, "deploy: {ticks: {nice: 0}, up: {nice: 3}}")
    assert niceness(plan) == {"gateway-ticks": 0, "strategy": 3, "sink-out": 0}


def test_a_niceness_that_needs_privileges_is_a_pipeline_error(workdir):
    with pytest.raises(ConfigError, match=r"p.yaml:\d+:\d+: .*nice.*greater than or equal to 0"):
        compile_with(workdir, "deploy: {ticks: {nice: -5}}")


def test_the_gateway_worker_runs_at_its_niceness(workdir):
    """Niceness adds to the supervisor's, up to the kernel's 19: under `nice -n 19` (as the tests
    run on a shared host) a gateway can be no nicer than the rest, and it is not."""
    seen = {}
    here = os.getpriority(os.PRIO_PROCESS, 0)

    def look(status):
        if status.nodes()["ticks"].emitted and "gateway-ticks" in status.pids and not seen:
            for worker in ("gateway-ticks", "strategy"):
                seen[worker] = os.getpriority(os.PRIO_PROCESS, status.pids[worker]) - os.getpriority(os.PRIO_PROCESS, 0)

    cep.run(compile_with(workdir, count=3000), on_status=look)  # 1.5 s: metrics come every 0.5 s
    assert seen == {"gateway-ticks": min(here + GATEWAY_NICE, 19) - here, "strategy": 0}
