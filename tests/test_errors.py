"""Errors carry what the daemon decides by as data, not in their wording."""

from __future__ import annotations

import pickle

from wacdc.coordinator import transient_side as _side
from wacdc.errors import ConnectError


def test_a_connect_error_says_its_side_whatever_its_text() -> None:
    # A source URL whose database is called "target": the wording must not decide.
    err = ConnectError("cannot connect to the source mysql://u@h:3306/target: refused",
                       "source")
    assert _side(err) == "source"
    assert _side(ConnectError("cannot connect to the target …", "target")) == "target"


def test_a_connect_error_crosses_the_decode_process_pipe_whole() -> None:
    back = pickle.loads(pickle.dumps(ConnectError("cannot connect: refused", "source")))
    assert isinstance(back, ConnectError)
    assert (str(back), back.side) == ("cannot connect: refused", "source")
