"""The graph step (`cep.compiler.graph.build_graph`): the pipeline's nodes and `from:` edges, and
every problem of its references, cycles, deploy targets and ends, collected rather than raised."""
from cep.compiler.graph import build_graph
from cep.config import load_pipeline


def built(pipeline_file, text):
    return build_graph(load_pipeline(pipeline_file(text)))


def test_nodes_carry_their_kind_and_edges_follow_from(pipeline_file):
    checked = built(pipeline_file, """\
        name: p
        sources:
          ticks: {type: synthetic, count: 10}
        streams:
          quotes: {from: ticks, ops: [{filter: "ask_price > bid_price"}]}
        sinks:
          out: {type: "null", from: [ticks, quotes]}
        """)
    graph = checked.graph
    assert {n: graph.nodes[n]["kind"] for n in graph} == {"ticks": "source", "quotes": "stream", "out": "sink"}
    assert sorted(graph.edges) == [("quotes", "out"), ("ticks", "out"), ("ticks", "quotes")]
    assert (checked.errors, checked.warnings, checked.unknown_inputs) == ([], [], set())


def test_every_reference_problem_is_collected_with_its_line(pipeline_file):
    checked = built(pipeline_file, """\
        name: p
        sources:
          ticks: {type: synthetic, count: 10}
        streams:
          lost: {from: tiks}
          ping: {from: pong}
          pong: {from: ping}
          late: {from: out}
        sinks:
          out: {type: "null", from: [lost, ping, late]}
        deploy:
          quotse: {parallelism: 2}
        """)
    found = {(p.location.line, p.message) for p in checked.errors}
    assert found == {
        (5, 'stream "lost": reads "tiks", which does not exist'),
        (6, "cycle: ping -> pong -> ping"),
        (8, 'stream "late": reads sink "out", but sinks produce nothing'),
        (12, 'deploy "quotse": no such node')}
    assert next(p for p in checked.errors if p.location.line == 5).hint == 'did you mean "ticks"?'
    assert [(p.location.line, p.message) for p in checked.warnings] == [(3, 'source "ticks" has no consumers')]


def test_acyclic_drops_the_cycle_and_marks_its_nodes_unknown(pipeline_file):
    checked = built(pipeline_file, """\
        name: p
        sources:
          ticks: {type: synthetic, count: 10}
        streams:
          ping: {from: [ticks, pong]}
          pong: {from: ping}
        sinks:
          out: {type: "null", from: pong}
        """)
    acyclic = checked.acyclic()
    assert sorted(acyclic.edges) == [("pong", "out"), ("ticks", "ping")]
    assert checked.unknown_inputs == {"ping", "pong"}
    assert checked.graph.has_edge("pong", "ping")  # the graph itself is left as written


def test_a_pipeline_without_sources_is_an_error(pipeline_file):
    checked = built(pipeline_file, """\
        name: p
        sources: {}
        sinks:
          out: {type: "null", from: ticks}
        """)
    assert "the pipeline has no sources" in [p.message for p in checked.errors]
