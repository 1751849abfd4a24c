"""The connection's state: the first ending is final, and everyone sees the same one."""

from __future__ import annotations

from streamer.sources.base import ExitStatus
from streamer.sources.exec.state import ConnectionState, Phase


def test_open_until_the_first_ending_which_is_final() -> None:
    state = ConnectionState()
    assert state.is_open
    assert state.ending is None
    assert not state.ended.is_set()
    assert state.kill()
    assert not state.lose("the connection was lost (OSError)")
    assert not state.finish(ExitStatus(0, "exit code 0"), None)
    assert not state.break_down(AttributeError("late"))
    assert state.phase is Phase.KILLED
    assert state.ended.is_set()


def test_an_ending_keeps_what_it_was_given() -> None:
    bug = AttributeError("'NoneType' object has no attribute 'recv'")
    state = ConnectionState()
    assert state.break_down(bug)
    ending = state.ending
    assert ending is not None
    assert (ending.phase, ending.bug, ending.status, ending.reason) == (
        Phase.BROKEN,
        bug,
        None,
        None,
    )
