"""Tests of vk_provider.logs: the record format, splitting output into records, and the
`kubectl logs` options (stream, since, tail)."""

import io

from vk_provider import logs, pb


def test_record_round_trip_full_and_partial():
    t = 1_767_323_045_000_000_006  # 2026-01-02T03:04:05.000000006Z
    assert logs.rfc3339(t) == "2026-01-02T03:04:05.000000006Z"
    assert logs.parse_rfc3339(logs.rfc3339(t)) == t
    full = logs.parse_record(logs.format_record(t, pb.LOG_STREAM_STDERR, b"a b  c\n"))
    assert (full.stream, full.content, full.time.ToNanoseconds()) == (pb.LOG_STREAM_STDERR, b"a b  c\n", t)
    partial = logs.parse_record(logs.format_record(t, pb.LOG_STREAM_STDOUT, b"no newline"))
    assert partial.content == b"no newline"
    empty = logs.parse_record(logs.format_record(t, pb.LOG_STREAM_STDOUT, b"\n"))
    assert empty.content == b"\n"
    assert logs.parse_record(b"garbage") is None


def test_writer_splits_lines_and_flushes_partial():
    f = io.BytesIO()
    w = logs.LogWriter(f, pb.LOG_STREAM_STDOUT, clock=lambda: 0)
    w.write(b"one\ntw")
    w.write(b"o\nthree")
    w.write(b"x" * (logs.MAX_RECORD + 5) + b"\n")
    w.close()
    got = [logs.parse_record(r).content for r in f.getvalue().splitlines()]
    assert got[:2] == [b"one\n", b"two\n"]
    assert got[2] == b"three" + b"x" * (logs.MAX_RECORD - 5)  # cut as a partial record
    assert got[3] == b"x" * 10 + b"\n"
    assert len(got) == 4


def _line(sec, stream, text):
    line = pb.LogLine(stream=stream, content=text)
    line.time.FromSeconds(sec)
    return line


def test_select_lines_options():
    out, err = pb.LOG_STREAM_STDOUT, pb.LOG_STREAM_STDERR
    lines = [_line(10, out, b"a"), _line(20, err, b"b"), _line(30, out, b"c"), _line(40, 0, b"d")]
    now = 45 * 1_000_000_000

    def sel(**kw):
        return b"".join(line.content for line in logs.select_lines(lines, pb.GetContainerLogsRequest(**kw), now))

    assert sel() == b"abcd"
    assert sel(stream=out) == b"acd"  # a line with no stream is stdout
    assert sel(stream=err) == b"b"
    assert sel(tail_lines=2) == b"cd"
    assert sel(tail_lines=0) == b""
    assert sel(tail_lines=1, stream=err) == b"b"
    assert sel(since_seconds=15) == b"cd"
    since = pb.GetContainerLogsRequest()
    since.since_time.FromSeconds(20)
    assert b"".join(x.content for x in logs.select_lines(lines, since, now)) == b"bcd"
