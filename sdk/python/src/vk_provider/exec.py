"""Serving Exec by running a local process: the provider checks the start message (pod,
container, state) and chooses argv, working directory and environment; `exec_process` wires
stdin, stdout and stderr to the stream and ends it with the one `exit` message."""

import asyncio
import os
import signal
from typing import AsyncIterator, Optional

import grpc

from .v1 import provider_pb2 as pb

_STOP = object()


async def recv_exec_start(request_iterator, context: grpc.aio.ServicerContext) -> pb.ExecStart:
    """Reads the first Exec message, which must be `start` with a command (INVALID_ARGUMENT
    otherwise). Keep using the same `request_iterator` afterwards."""
    first = await anext(aiter(request_iterator), None)
    if first is None or not first.HasField("start") or not first.start.command:
        await context.abort(
            grpc.StatusCode.INVALID_ARGUMENT,
            "the first Exec message must be `start` with a non-empty command",
        )
    return first.start


async def exec_process(
    request_iterator,
    start: pb.ExecStart,
    argv: list,
    *,
    cwd: Optional[str] = None,
    env: Optional[dict] = None,
) -> AsyncIterator[pb.ExecResponse]:
    """Runs `argv` and yields its output, then exactly one `exit`: the process's exit code,
    128+N if signal N killed it, 127 if the program was not found, 126 if it could not be
    started. There is no TTY: with `tty`, stderr goes to stdout. Output is read until the
    process exits (and at most a second longer); then its process group is killed, background
    children included. If the caller goes away, the process group is killed at once."""
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            cwd=cwd,
            env=env,
            stdin=asyncio.subprocess.PIPE if start.stdin else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT if start.tty else asyncio.subprocess.PIPE,
            start_new_session=True,
        )
    except FileNotFoundError as e:
        yield pb.ExecResponse(exit=pb.ProcessExit(exit_code=127, message=str(e)))
        return
    except OSError as e:
        yield pb.ExecResponse(exit=pb.ProcessExit(exit_code=126, message=str(e)))
        return

    queue: asyncio.Queue = asyncio.Queue()

    async def read(reader: asyncio.StreamReader, field: str) -> None:
        while chunk := await reader.read(65536):
            await queue.put(pb.ExecResponse(**{field: chunk}))
        await queue.put(None)

    async def feed() -> None:
        try:
            async for req in request_iterator:
                if req.HasField("stdin") and proc.stdin is not None:
                    proc.stdin.write(req.stdin)
                    await proc.stdin.drain()
                elif req.HasField("stdin_close"):
                    break
        except (ConnectionError, grpc.aio.AioRpcError):
            pass
        finally:
            if proc.stdin is not None:
                proc.stdin.close()

    async def exited() -> int:
        # Not proc.wait(): asyncio's also waits for the pipes, which background children may hold.
        while proc.returncode is None:
            await asyncio.sleep(0.05)
        return proc.returncode

    async def output_deadline() -> None:
        await exited()  # stop reading a second after the exit
        await asyncio.sleep(1.0)
        await queue.put(_STOP)

    readers = [asyncio.create_task(read(proc.stdout, "stdout")), asyncio.create_task(output_deadline())]
    if not start.tty:
        readers.append(asyncio.create_task(read(proc.stderr, "stderr")))
    feeder = asyncio.create_task(feed()) if start.stdin else None
    try:
        open_streams = 1 if start.tty else 2
        while open_streams:
            item = await queue.get()
            if item is _STOP:
                break
            if item is None:
                open_streams -= 1
            else:
                yield item
        code = await exited()
        yield pb.ExecResponse(exit=pb.ProcessExit(exit_code=code if code >= 0 else 128 - code))
    finally:
        for task in readers + ([feeder] if feeder else []):
            task.cancel()
        # The command's process group goes with it: what it left running in the background (and
        # the command itself if the caller went away) is killed, which also releases the pipes.
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            await asyncio.wait_for(proc.wait(), 2)
        except asyncio.TimeoutError:
            pass  # a process that left the group still holds a pipe
