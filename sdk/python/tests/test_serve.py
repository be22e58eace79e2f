"""Tests of serving and dialling through a real Unix socket: stale/live socket handling, mode
0600, health, StatusHub over WatchPodStatus, Exec of local processes and log-file follow."""

import asyncio
import os
import socket
import stat

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

import vk_provider
from vk_provider import logs, pb, pb_grpc


def test_prepare_socket_replaces_stale_refuses_live_and_files(tmp_path):
    path = str(tmp_path / "sub" / "p.sock")
    os.makedirs(os.path.dirname(path))
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(path)
    stale.close()  # a socket file nobody listens on
    vk_provider.prepare_socket(path)
    assert not os.path.exists(path)

    live = socket.socket(socket.AF_UNIX)
    live.bind(path)
    live.listen()
    try:
        with pytest.raises(vk_provider.SocketInUse):
            vk_provider.prepare_socket(path)
    finally:
        live.close()

    regular = tmp_path / "file"
    regular.write_text("x")
    with pytest.raises(FileExistsError):
        vk_provider.prepare_socket(str(regular))
    assert regular.exists()


class Servicer(pb_grpc.ProviderServiceServicer):
    def __init__(self, log_path):
        self.hub = vk_provider.StatusHub()
        self.log_path = log_path
        self.live = True

    async def GetPodStatus(self, request, context):
        return await self.hub.get_pod_status(request.uid, context)

    async def WatchPodStatus(self, request, context):
        async for event in self.hub.watch():
            yield event

    async def Exec(self, request_iterator, context):
        start = await vk_provider.recv_exec_start(request_iterator, context)
        async for msg in vk_provider.exec_process(request_iterator, start, list(start.command)):
            yield msg

    async def GetContainerLogs(self, request, context):
        async for msg in logs.serve_log_file(self.log_path, request, lambda: self.live, poll_seconds=0.02):
            yield msg


async def _exec(stub, argv, stdin=b""):
    async def requests():
        yield pb.ExecRequest(start=pb.ExecStart(command=argv, stdin=bool(stdin), stdout=True, stderr=True))
        if stdin:
            yield pb.ExecRequest(stdin=stdin)
            yield pb.ExecRequest(stdin_close=pb.StdinClose())

    out, err, exits, after = b"", b"", [], 0
    async for msg in stub.Exec(requests()):
        after += bool(exits)
        out += msg.stdout
        err += msg.stderr
        if msg.HasField("exit"):
            exits.append(msg.exit.exit_code)
    return out, err, exits, after


def test_serve_health_watch_exec_logs_and_stop(tmp_path):
    path = str(tmp_path / "p.sock")
    log_path = str(tmp_path / "c.log")
    with open(log_path, "wb") as f:
        logs.LogWriter(f, pb.LOG_STREAM_STDOUT).write(b"first\nsecond\n")

    async def scenario():
        servicer = Servicer(log_path)
        servicer.hub.publish(pb.PodStatus(uid="a", namespace="ns", name="pa"))
        stop = asyncio.Event()
        async def shutdown():
            servicer.hub.close()  # ends the open watch: no need to wait out the grace period

        server = asyncio.create_task(vk_provider.serve(servicer, path, stop=stop, grace=60, on_shutdown=shutdown))
        for _ in range(100):
            if os.path.exists(path):
                break
            await asyncio.sleep(0.02)
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600

        async with vk_provider.dial(path) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            reply = await health.Check(health_pb2.HealthCheckRequest(service="vk.provider.v1.ProviderService"))
            assert reply.status == health_pb2.HealthCheckResponse.SERVING

            stub = pb_grpc.ProviderServiceStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as e:
                await stub.GetPodStatus(pb.GetPodStatusRequest(uid="nope"))
            assert e.value.code() == grpc.StatusCode.NOT_FOUND

            watch = stub.WatchPodStatus(pb.WatchPodStatusRequest())
            first = await watch.read()
            assert (first.status.uid, first.status.revision) == ("a", 1)
            assert first.status.provider_instance == servicer.hub.instance
            assert (await watch.read()).initial_sync_complete.pod_count == 1
            servicer.hub.publish(pb.PodStatus(uid="a", namespace="ns", name="pa", message="m"))
            assert (await watch.read()).status.revision == 2
            servicer.hub.remove("a")
            assert (await watch.read()).removed.name == "pa"

            assert await _exec(stub, ["sh", "-c", "exit 3"]) == (b"", b"", [3], 0)
            assert await _exec(stub, ["sh", "-c", "echo hello; echo oops >&2"]) == (b"hello\n", b"oops\n", [0], 0)
            assert await _exec(stub, ["cat"], stdin=b"in\n") == (b"in\n", b"", [0], 0)
            assert (await _exec(stub, ["sh", "-c", "kill -TERM $$"]))[2] == [143]
            assert (await _exec(stub, ["no-such-program-vk"]))[2] == [127]
            # A background child holding stdout open does not keep the exec open past ~1 s.
            assert await _exec(stub, ["sh", "-c", "sleep 3 & echo bg"]) == (b"bg\n", b"", [0], 0)

            got = []
            follow = stub.GetContainerLogs(pb.GetContainerLogsRequest(follow=True, tail_lines=1))
            got += [line.content for line in (await follow.read()).lines]
            with open(log_path, "ab") as f:
                logs.LogWriter(f, pb.LOG_STREAM_STDOUT).write(b"third\n")
            got += [line.content for line in (await follow.read()).lines]
            servicer.live = False
            assert await follow.read() == grpc.aio.EOF
            assert got == [b"second\n", b"third\n"]

            another_watch = stub.WatchPodStatus(pb.WatchPodStatusRequest())
            assert (await another_watch.read()).initial_sync_complete.pod_count == 0
            stop.set()  # as SIGTERM would
            await asyncio.wait_for(server, 5)
            assert await watch.read() == grpc.aio.EOF
        assert not os.path.exists(path)

    asyncio.run(scenario())
