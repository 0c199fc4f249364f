"""The pipe between the source's COPY and the warehouse's: a failure on either side fails the copy."""

from __future__ import annotations

import threading

import pytest

from martech.ingest.landing import _pipe_copy


class _Cursor:
    rowcount = 0


def _reader(cursor: _Cursor, seen: list[bytes]):
    def copy_in(src):
        while block := src.read(1 << 16):
            seen.append(block)
        cursor.rowcount = b"".join(seen).count(b"\n")
    return copy_in


def test_rows_written_on_one_side_are_read_on_the_other():
    cursor, seen = _Cursor(), []
    n = _pipe_copy(lambda out: [out.write(b"%d,x\n" % i) for i in range(50_000)], _reader(cursor, seen), cursor)
    assert n == 50_000 and b"".join(seen).startswith(b"0,x\n1,x\n")


def test_a_writer_failing_after_some_rows_fails_even_though_the_reader_saw_an_end():
    def partial(out):
        out.write(b"1,x\n")
        raise ConnectionError("source connection lost")

    cursor = _Cursor()
    with pytest.raises(ConnectionError, match="source connection lost"):
        _pipe_copy(partial, _reader(cursor, []), cursor)


def test_a_reader_failing_stops_a_writer_with_much_more_to_send():
    def endless(out):
        while True:
            out.write(b"y" * 65536)

    def refuse(src):
        src.read(10)
        raise ValueError("bad row in the warehouse's COPY")

    threads = threading.active_count()
    with pytest.raises(ValueError, match="bad row"):
        _pipe_copy(endless, refuse, _Cursor())
    assert threading.active_count() == threads  # the writer saw the pipe closed and ended
