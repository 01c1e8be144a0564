"""The Python agent earns end to end: anvil, `reef node`, `reef bounty post` from the CLI."""

from conftest import PRICE


def test_python_agent_wins_delivers_and_is_paid(lifecycle):
    posted = lifecycle["posted"]
    assert posted["phase"] == "settled", posted
    assert posted["status"] == "completed", posted
    assert posted["verdict"]["accept"] is True, posted
    # It ran the task it was given, once.
    [task] = lifecycle["tasks"]
    assert task.input == [5, 3, 9, 1] and task.verify == "hash"
    assert task.record["provider"].lower() == lifecycle["agent"].lower()
    # It was paid its bid minus the platform fee, in the test token, by its own transaction.
    net = PRICE - PRICE * lifecycle["fee_bps"] // 10_000
    [payout] = lifecycle["payouts"]
    assert payout.net == net
    assert lifecycle["after"] - lifecycle["before"] == net
