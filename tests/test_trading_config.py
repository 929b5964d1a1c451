"""The trading sections (`venues:`, `orders:`), the `venue` plugin kind and the `positions` sink:
what `cep validate` and `cep graph` say about them, and what the sink journals."""
from __future__ import annotations

import json
import textwrap

import pytest
from click.testing import CliRunner

import cep
from cep.cli import cli
from cep.components.base import BuildContext
from cep.components.sinks.positions import PositionsSinkParams, positions_sink
from cep.errors import UserError
from cep.events import Action, OrderEvent, OrderStatus
from cep.orders import positions_report, read_events

TRADING = """\
name: trading
sources:
  ticks: {type: synthetic, instruments: [BTCUSDT], count: 100, seed: 1}
streams:
  quotes: {from: ticks, ops: [{filter: "ask_price > bid_price"}]}
rules:
  up3: {use: momentum, from: quotes, with: {count: 3, direction: up, quantity: 1}}
venues:
  paper: {type: paper, quotes: quotes, latency: 2ms, seed: 7}
orders:
  exec:
    from: [up3]
    venue: paper
    risk: {max_quantity: 10, max_notional: 250000, max_position: 20, max_open_orders: 10,
           price_band: 0.5%, max_spread: 0.1%, orders_per_second: 20, daily_loss_limit: 5000,
           max_signal_age: 1s}
    breaker: {failures: 5, reset_after: 10s}
    request: {timeout: 100ms, retries: 2}
sinks:
  log: {type: jsonl, from: [exec], path: orders.jsonl}
  book: {type: positions, from: [exec], journal: journal.db}
"""


def write(tmp_path, text: str) -> str:
    path = tmp_path / "p.yaml"
    path.write_text(textwrap.dedent(text))
    return str(path)


def problems(tmp_path, text: str) -> list[str]:
    with pytest.raises(UserError) as caught:
        cep.compile(write(tmp_path, text))
    return [str(problem).replace(f"{tmp_path}/", "") for problem in caught.value.problems]


def test_a_trading_pipeline_compiles_into_an_executor_and_a_venue_process(tmp_path):
    plan = cep.compile(write(tmp_path, TRADING))
    roles = {process.name: process.role for process in plan.processes}
    assert roles["executor-exec"] == "executor" and roles["venue-paper"] == "venue"
    executor = plan.nodes["exec"]
    assert executor.kind == "order" and executor.inputs == ("exec.in",)
    assert set(plan.nodes["exec.in"].inputs) == {"up3", "quotes"}  # merged beside its signals' rule
    assert "exec.in" in plan.process("strategy").nodes
    assert executor.params["venue"] == "paper" and executor.params["quotes"] == "quotes"
    assert plan.nodes["paper"].kind == "venue" and plan.nodes["paper"].inputs == ("quotes",)
    assert {edge.id for edge in plan.edges} >= {"exec.in->executor-exec", "exec->sink-log", "exec->sink-book",
                                                "exec->venue-paper"}


@pytest.mark.parametrize("change, expected", [
    (("venue: paper\n", "venue: papr\n"),
     'p.yaml:13:5: order executor "exec": venue "papr" does not exist (did you mean "paper"?)'),
    (("from: [up3]", "from: [up4]"),
     'p.yaml:12:12: order executor "exec": reads "up4", which does not exist (did you mean "up3"?)'),
    (("quotes: quotes, latency", "quotes: up3, latency"),
     'p.yaml:9:24: venue "paper": quotes "up3" is a rule, not market data (name a source or stream of quotes)'),
    (("type: paper", "type: papper"),
     "p.yaml:9:11: venue \"paper\": unknown venue type 'papper' (did you mean 'paper'? known venues: paper)"),
    (("latency: 2ms", "latency: 2 parsecs"),
     'p.yaml:9:40: venue "paper": latency: expected a duration such as 500ms, 2s or 1m, got \'2 parsecs\''),
    (("price_band: 0.5%", "price_band: 0.5x"),
     'p.yaml:15:12: order executor "exec": risk.price_band: input should be a valid number, unable to parse '
     "string as a number (got '0.5x')"),
    (("failures: 5", "failurs: 5"),
     "p.yaml:17:15: order executor \"exec\": breaker: unknown key 'failurs' (did you mean 'failures'? "
     "valid keys: failures, reset_after)"),
    (("max_quantity: 10", "max_quantity: -1"),
     'p.yaml:14:12: order executor "exec": risk.max_quantity: input should be greater than 0 (got -1)'),
    (("journal: journal.db", "jurnal: journal.db"),
     "p.yaml:21:41: sink \"book\": unknown key 'jurnal' (did you mean 'journal'? valid keys: journal, mode)"),
    (("    venue: paper\n", ""),
     "p.yaml:11:3: order executor \"exec\": missing required key 'venue' (name an entry of venues:)"),
])
def test_each_mistake_in_the_trading_sections_is_named_at_its_line_with_a_fix(tmp_path, change, expected):
    assert TRADING.count(change[0]) == 1
    assert expected in problems(tmp_path, TRADING.replace(*change))


@pytest.mark.parametrize("rules, deploy", [
    ("", "deploy:\n  up3: {parallelism: 2}\n"),
    ("  down3: {use: momentum, from: quotes, with: {count: 3, direction: down, quantity: 1}}\n",
     "deploy:\n  down3: {parallelism: 2}\n"),  # its signals in two processes: no traceback
], ids=["one rule on two workers", "two rules, one of them on two workers"])
def test_an_executor_reading_signals_made_in_several_workers_is_named_at_its_from(tmp_path, rules, deploy):
    text = TRADING.replace("venues:", rules + "venues:").replace("from: [up3]", "from: [up3, down3]" if rules
                                                                 else "from: [up3]") + deploy
    found = problems(tmp_path, text)
    assert len(found) == 1 and found[0].startswith(f"p.yaml:{13 if rules else 12}:5: "), found  # at its from:
    assert 'order executor "exec": its signals are made in several workers' in found[0]
    assert "parallelism 1" in found[0]


def test_cep_validate_checks_the_trading_sections(tmp_path):
    good = CliRunner().invoke(cli, ["validate", write(tmp_path, TRADING)])
    assert good.exit_code == 0 and "ok" in good.output
    bad = CliRunner().invoke(cli, ["validate", write(tmp_path, TRADING.replace("risk: {", "risky: {"))])
    assert bad.exit_code == 2 and "unknown key 'risky'" in bad.output


VENUE_PLUGIN = '''
from pydantic import BaseModel, ConfigDict
from cep.events import OrderStatus
from cep.orders.venue import VenueReply
from cep.plugins import venue


class BrokerParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    account: str


class Broker:
    def __init__(self, account):
        self.account, self.orders = account, {}

    def place(self, request):
        self.orders.setdefault(request.client_order_id, request)
        return VenueReply(request.client_order_id, OrderStatus.ACCEPTED, order_id=self.account)

    def cancel(self, client_order_id, timestamp):
        return VenueReply(client_order_id, OrderStatus.CANCELED)

    def query(self, client_order_id):
        return None

    def reports(self):
        return []


@venue("broker", params=BrokerParams)
def broker(params, ctx):
    """A broker adapter in a plugin module."""
    return Broker(params.account)
'''


def test_a_venue_is_a_plugin_kind_a_pipeline_loads_by_path(tmp_path):
    (tmp_path / "broker.py").write_text(VENUE_PLUGIN)
    text = "plugins: [broker.py]\n" + TRADING.replace("type: paper, quotes: quotes, latency: 2ms, seed: 7",
                                                       "type: broker, quotes: quotes, account: A1")
    plan = cep.compile(write(tmp_path, text))
    assert plan.nodes["paper"].type == "broker" and plan.nodes["paper"].params["account"] == "A1"
    listed = CliRunner().invoke(cli, ["plugins", str(tmp_path / "p.yaml"), "--kind", "venue"])
    assert "broker" in listed.output and "paper" in listed.output
    assert "missing required key 'account'" in " ".join(
        problems(tmp_path, text.replace(", account: A1", "")))


def event(coid: str, sequence: int, status: OrderStatus, **fill) -> dict:
    return OrderEvent(order_id="v-1", signal_id=f"s-{coid}", status=status, filled_quantity=fill.get("q", 0.0),
                      fill_price=fill.get("price"), timestamp=1_000 + sequence, client_order_id=coid,
                      instrument="BTCUSDT", side=Action.BUY, quantity=2.0, fill_quantity=fill.get("q", 0.0),
                      fill_id=fill.get("fill_id"), sequence=sequence).to_record()


def test_the_positions_sink_journals_each_event_once_and_dead_letters_what_is_not_one(tmp_path):
    letters = []
    ctx = BuildContext(node="book", base_dir=tmp_path, dead_letter_fn=lambda *a: letters.append(a))
    sink = positions_sink(PositionsSinkParams(journal="j.db"), ctx)
    events = [event("c1", 1, OrderStatus.NEW), event("c1", 2, OrderStatus.SUBMITTED),
              event("c1", 3, OrderStatus.FILLED, q=2.0, price=50.0, fill_id="f1")]
    sink.write(events[:2])
    sink.write(events[1:] + [{"status": "NOPE"}])  # a retransmitted event and a record that is no event
    sink.close()
    assert [e.sequence for e in read_events(tmp_path / "j.db")] == [1, 2, 3]
    assert ctx.counters.noted == {"duplicate event": 1} and ctx.counters.dead_lettered == 1
    assert letters[0][1].startswith("not an OrderEvent")
    assert positions_report(tmp_path / "j.db") == [
        {"instrument": "BTCUSDT", "quantity": 2.0, "average_cost": 50.0, "realized": 0.0}]


def test_the_positions_sink_starts_a_new_journal_each_run_unless_it_appends(tmp_path):
    for run, mode in enumerate(["truncate", "truncate", "append"]):
        ctx = BuildContext(node="book", base_dir=tmp_path, run_dir=tmp_path / "run")
        sink = positions_sink(PositionsSinkParams(journal="j.db", mode=mode), ctx)
        sink.write([event(f"c{run}", 1, OrderStatus.NEW)])
        sink.close()
    assert [e.client_order_id for e in read_events(tmp_path / "j.db")] == ["c1", "c2"]


def test_the_readme_trading_sections_validate_in_the_shipped_trading_pipeline(tmp_path):
    import re
    from pathlib import Path

    import yaml

    root = Path(__file__).resolve().parents[1]
    block = next(b for b in re.findall(r"```yaml\n(.*?)```", (root / "README.md").read_text(), re.S)
                 if "venues:" in b and "orders:" in b)
    pipeline = yaml.safe_load((root / "pipelines" / "trading.yaml").read_text())
    pipeline.update(yaml.safe_load(block))
    pipeline["sources"]["ticks"]["path"] = str(root / "data" / "binance_btcusdt_ethusdt_20240808.csv.gz")
    pipeline.pop("tests")
    path = tmp_path / "readme.yaml"
    path.write_text(yaml.safe_dump(pipeline))
    plan = cep.compile(path)
    assert {"executor-exec", "venue-paper"} <= {process.name for process in plan.processes}
