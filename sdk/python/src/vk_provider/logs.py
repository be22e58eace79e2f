"""Container logs kept in files, and the `kubectl logs` options a provider applies itself.

File format (like the CRI's): one record per line,
`<RFC3339Nano time> <stdout|stderr> <F|P> <content>`, where F marks a full line (its newline was
stripped) and P a partial one (output that ended, or a very long line cut, without a newline).
`LogWriter` turns a process's output into records; `serve_log_file` answers GetContainerLogs
from a file, honouring stream, since_seconds/since_time, tail_lines and follow. vk-host applies
`timestamps` and `limit_bytes` itself; `previous` is the caller's choice of file."""

import asyncio
import calendar
import time
from typing import AsyncIterator, BinaryIO, Callable, Optional

from .v1 import provider_pb2 as pb

MAX_RECORD = 16 * 1024  # longer lines are cut into partial records
_NAMES = {pb.LOG_STREAM_STDOUT: b"stdout", pb.LOG_STREAM_STDERR: b"stderr"}
_STREAMS = {v: k for k, v in _NAMES.items()}


def rfc3339(time_ns: int) -> str:
    """UTC time with nanoseconds, e.g. 2026-01-02T03:04:05.000000006Z."""
    secs, nanos = divmod(time_ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{nanos:09d}Z"


def parse_rfc3339(text: str) -> int:
    """Nanoseconds since the epoch of a time written by `rfc3339`."""
    whole, _, frac = text.rstrip("Z").partition(".")
    secs = calendar.timegm(time.strptime(whole, "%Y-%m-%dT%H:%M:%S"))
    return secs * 1_000_000_000 + int((frac or "0").ljust(9, "0")[:9])


def format_record(time_ns: int, stream: int, content: bytes) -> bytes:
    """One record for `content` (a line with or without its newline)."""
    full = content.endswith(b"\n")
    body = content[:-1] if full else content
    tag = b"F" if full else b"P"
    return b" ".join([rfc3339(time_ns).encode(), _NAMES.get(stream, b"stdout"), tag, body]) + b"\n"


def parse_record(record: bytes) -> Optional[pb.LogLine]:
    """The LogLine of one record (with or without its trailing newline); None if malformed."""
    parts = record.rstrip(b"\n").split(b" ", 3)
    if len(parts) < 3 or parts[1] not in _STREAMS or parts[2] not in (b"F", b"P"):
        return None
    try:
        time_ns = parse_rfc3339(parts[0].decode())
    except ValueError:
        return None
    content = parts[3] if len(parts) == 4 else b""
    line = pb.LogLine(stream=_STREAMS[parts[1]], content=content + (b"\n" if parts[2] == b"F" else b""))
    line.time.FromNanoseconds(time_ns)
    return line


class LogWriter:
    """Splits one output stream into records appended to `file` (shared by both streams)."""

    def __init__(self, file: BinaryIO, stream: int, clock: Callable[[], int] = time.time_ns):
        self.file, self.stream, self.clock = file, stream, clock
        self._pending = b""

    def write(self, data: bytes) -> None:
        self._pending += data
        while True:
            cut = self._pending.find(b"\n")
            if cut < 0 and len(self._pending) < MAX_RECORD:
                break
            end = cut + 1 if 0 <= cut < MAX_RECORD else MAX_RECORD
            self._emit(self._pending[:end])
            self._pending = self._pending[end:]
        self.file.flush()

    def close(self) -> None:
        """Writes what is left of an unfinished last line."""
        if self._pending:
            self._emit(self._pending)
            self._pending = b""
        self.file.flush()

    def _emit(self, content: bytes) -> None:
        self.file.write(format_record(self.clock(), self.stream, content))


async def pump(reader: asyncio.StreamReader, writer: LogWriter) -> None:
    """Copies a process pipe into a log until end of file."""
    while chunk := await reader.read(65536):
        writer.write(chunk)
    writer.close()


def wanted(request: pb.GetContainerLogsRequest, stream: int) -> bool:
    """Whether a line of `stream` is asked for (UNSPECIFIED: both; a line's: stdout)."""
    if request.stream == pb.LOG_STREAM_UNSPECIFIED:
        return True
    return (stream or pb.LOG_STREAM_STDOUT) == request.stream


def since_ns(request: pb.GetContainerLogsRequest, now_ns: int) -> Optional[int]:
    """The earliest time a line may have, in ns since the epoch, or None."""
    if request.HasField("since_seconds"):
        return now_ns - request.since_seconds * 1_000_000_000
    if request.HasField("since_time"):
        return request.since_time.ToNanoseconds()
    return None


def select_lines(lines: list, request: pb.GetContainerLogsRequest, now_ns: int) -> list:
    """The lines (oldest first) of the wanted stream at or after the since limit, then the last
    `tail_lines` of those."""
    limit = since_ns(request, now_ns)
    out = [
        line
        for line in lines
        if wanted(request, line.stream)
        and (limit is None or not line.HasField("time") or line.time.ToNanoseconds() >= limit)
    ]
    if request.HasField("tail_lines"):
        out = out[len(out) - max(request.tail_lines, 0):] if request.tail_lines > 0 else []
    return out


def _read_from(path: str, offset: int) -> tuple[list, int]:
    """Complete records of `path` from byte `offset`; returns their lines and the new offset."""
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read()
    except FileNotFoundError:
        return [], offset
    end = data.rfind(b"\n") + 1  # an unfinished record is read next time
    lines = [line for rec in data[:end].splitlines() if (line := parse_record(rec)) is not None]
    return lines, offset + end


def read_lines(path: str) -> list:
    """Every line of a log file (empty if it does not exist)."""
    return _read_from(path, 0)[0]


async def serve_log_file(
    path: str,
    request: pb.GetContainerLogsRequest,
    is_live: Callable[[], bool],
    poll_seconds: float = 0.2,
) -> AsyncIterator[pb.GetContainerLogsResponse]:
    """Answers GetContainerLogs from a log file. With `follow`, new lines are sent as they are
    written until `is_live()` turns false (the instance ended and its output is all written)."""
    lines, offset = _read_from(path, 0)
    selected = select_lines(lines, request, time.time_ns())
    if selected:
        yield pb.GetContainerLogsResponse(lines=selected)
    if not request.follow:
        return
    only_stream = pb.GetContainerLogsRequest(stream=request.stream)
    while True:
        live = is_live()  # read before the file: a last line written before the end is not lost
        lines, offset = _read_from(path, offset)
        selected = select_lines(lines, only_stream, 0)
        if selected:
            yield pb.GetContainerLogsResponse(lines=selected)
        elif not live:
            return
        else:
            await asyncio.sleep(poll_seconds)


__all__ = [
    "LogWriter",
    "format_record",
    "parse_record",
    "parse_rfc3339",
    "pump",
    "read_lines",
    "rfc3339",
    "select_lines",
    "serve_log_file",
    "since_ns",
    "wanted",
]
