"""The output tail keeps the last N bytes and decodes them safely."""

from hypothesis import given
from hypothesis import strategies as st
from vahana_worker import outputbuffer


def test_keeps_only_the_tail() -> None:
    tail = outputbuffer.TailBuffer(5)
    tail.write(b"abc")
    tail.write(b"defg")
    assert tail.getvalue() == b"cdefg"
    tail.write(b"0123456789")
    assert tail.getvalue() == b"56789"
    assert tail.total_bytes == 17


def test_zero_limit_keeps_nothing() -> None:
    tail = outputbuffer.TailBuffer(0)
    tail.write(b"abc")
    assert tail.getvalue() == b""
    assert tail.total_bytes == 3


def test_cut_utf8_sequence_is_replaced() -> None:
    tail = outputbuffer.TailBuffer(3)
    tail.write("é€".encode())  # 2 + 3 bytes; the tail starts inside nothing, ends whole
    assert tail.text() == "€"
    tail = outputbuffer.TailBuffer(4)
    tail.write("é€".encode())
    assert tail.text() == "\ufffd€"


@given(st.lists(st.binary(max_size=50), max_size=20), st.integers(min_value=0, max_value=64))
def test_tail_equals_suffix_of_everything_written(chunks: list[bytes], limit: int) -> None:
    tail = outputbuffer.TailBuffer(limit)
    for chunk in chunks:
        tail.write(chunk)
    everything = b"".join(chunks)
    assert tail.getvalue() == (everything[-limit:] if limit else b"")
    assert tail.total_bytes == len(everything)
