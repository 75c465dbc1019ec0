"""The send log (simulator/send_log.py): one record per depth event sent, joinable on (symbol, u)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from depthkeeper.simulator import SimHandle
from depthkeeper.simulator.send_log import read_send_log

from .conftest import wait_until


def _records(path: Path, codes: tuple[str, ...]) -> dict[tuple[str, int, int], float]:
    return {(codes[index], era, u): sent_s for index, era, u, sent_s in read_send_log(path)} if path.exists() else {}


def test_every_received_event_is_in_the_send_log_with_its_stamp(
    start_sim: Callable[..., SimHandle], connect: Callable, tmp_path: Path
) -> None:
    codes = ("BTCUSDT", "ETHUSDT")
    log_path = tmp_path / "sent.bin"
    sim = start_sim(dialect="binance", symbols=codes, rate_per_symbol=300.0, stamp=True,
                    binance_interval_scale=0, binance_send_log=str(log_path))
    client = connect(f"{sim.url}/stream?streams=btcusdt@depth@100ms/ethusdt@depth@100ms")
    client.wait_for(lambda c: len(c.events("BTCUSDT")) >= 5 and len(c.events("ETHUSDT")) >= 5)
    received = [event for code in codes for event in client.events(code)][:10]
    era = sim.era
    # the log reaches the file within its flush interval: wait for every received event to be there
    wait_until(lambda: all((e["s"], era, e["u"]) in _records(log_path, codes) for e in received))
    records = _records(log_path, codes)
    for event in received:
        # the same send time as the stamp (which is printed with 6 decimals)
        assert abs(records[(event["s"], era, event["u"])] - event["x"]) < 1e-6
    assert {key[1] for key in records} == {era}


def test_off_by_default(binance_sim: SimHandle) -> None:
    assert binance_sim.config.binance_send_log == ""
