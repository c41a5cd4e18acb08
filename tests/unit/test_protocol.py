from __future__ import annotations

import pytest

from signaling import protocol
from signaling.core.errors import BadMessage, ChatTooLong


def test_parses_each_type() -> None:
    assert protocol.parse('{"type":"join","token":"t"}') == protocol.Join("t", None)
    assert protocol.parse('{"type":"join","token":"t","resume":"p.s"}') == protocol.Join("t", "p.s")
    assert protocol.parse('{"type":"admit","participant":"p"}') == protocol.Admit("p")
    assert protocol.parse('{"type":"deny","participant":"p"}') == protocol.Deny("p", "")
    assert protocol.parse('{"type":"signal","to":"p","data":{"a":1}}') == protocol.Signal(
        "p", {"a": 1}
    )
    assert protocol.parse('{"type":"chat","text":"hi"}') == protocol.Chat("hi")
    assert protocol.parse('{"type":"leave","extra":1}') == protocol.Leave()
    assert protocol.parse('{"type":"end"}') == protocol.End()
    assert protocol.message_type(protocol.End()) == "end"


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "null",
        "[]",
        '{"type":null}',
        '{"type":"join"}',
        '{"type":"join","token":""}',
        '{"type":"join","token":"t","resume":5}',
        '{"type":"admit","participant":""}',
        '{"type":"admit","participant":"' + "p" * 65 + '"}',
        '{"type":"lobby_notice","text":"' + "x" * 501 + '"}',
    ],
)
def test_rejects(raw: str) -> None:
    with pytest.raises(BadMessage):
        protocol.parse(raw)


def test_chat_length() -> None:
    with pytest.raises(ChatTooLong):
        protocol.parse('{"type":"chat","text":"' + "x" * 2001 + '"}')
