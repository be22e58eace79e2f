"""End-to-end tests of the process provider through its socket: real processes with their
volume files and environment, exit codes and restarts, logs (stream, previous, tail), exec in
the container's environment, stats, and DeletePod with SIGTERM then SIGKILL after the grace
period."""

import asyncio
import json
import time

import grpc
import pytest

import vk_provider
from provider import ProcessProvider
from vk_provider import pb, pb_grpc


def make_pod(uid, script, policy="Never", grace=30):
    spec = {
        "restartPolicy": policy,
        "terminationGracePeriodSeconds": grace,
        "containers": [{"name": "main", "volumeMounts": [{"name": "cfg", "mountPath": "/etc/cfg"}]}],
    }
    p = pb.Pod(uid=uid, namespace="ns", name=uid, pod_json=json.dumps({"spec": spec}).encode())
    rc = p.containers.add(name="main", command=["sh", "-c", script])
    rc.env.add(name="GREETING", value="hi")
    p.volumes.add(name="cfg").files.add(path="sub/x.txt", content=b"from volume\n", mode=0o600)
    return p


class Harness:
    def __init__(self, stub):
        self.stub = stub

    async def wait(self, uid, what, cond, timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                st = (await self.stub.GetPodStatus(pb.GetPodStatusRequest(uid=uid))).status
            except grpc.aio.AioRpcError as e:
                st = e.code()
            if cond(st):
                return st
            await asyncio.sleep(0.05)
        pytest.fail(f"pod {uid}: {what} did not happen; last status {st}")

    async def logs(self, uid, **kw):
        out = b""
        async for msg in self.stub.GetContainerLogs(pb.GetContainerLogsRequest(uid=uid, container="main", **kw)):
            out += b"".join(line.content for line in msg.lines)
        return out

    async def exec(self, uid, argv):
        out, code = b"", None
        async for msg in self.stub.Exec(iter([pb.ExecRequest(start=pb.ExecStart(uid=uid, container="main", command=argv, stdout=True))])):
            out += msg.stdout
            if msg.HasField("exit"):
                code = msg.exit.exit_code
        return out, code


def with_provider(tmp_path, scenario):
    async def main():
        provider = ProcessProvider(tmp_path / "work")
        (tmp_path / "work").mkdir()
        stop = asyncio.Event()
        sock = str(tmp_path / "p.sock")
        server = asyncio.create_task(vk_provider.serve(provider, sock, stop=stop, grace=0.2, on_shutdown=provider.shutdown))
        while not (tmp_path / "p.sock").exists():
            await asyncio.sleep(0.02)
        try:
            async with vk_provider.dial(sock) as channel:
                await scenario(Harness(pb_grpc.ProviderServiceStub(channel)), provider)
        finally:
            stop.set()
            await server

    asyncio.run(main())


def terminated(st):
    return not isinstance(st, grpc.StatusCode) and st.containers[0].state.HasField("terminated")


def test_exit_code_restart_logs_and_previous(tmp_path):
    script = 'echo "$GREETING $(cat $VK_ROOT/etc/cfg/sub/x.txt)"; echo oops >&2; exit 3'

    async def scenario(h, provider):
        await h.stub.CreatePod(pb.CreatePodRequest(pod=make_pod("r", script, policy="OnFailure")))
        await h.stub.CreatePod(pb.CreatePodRequest(pod=make_pod("r", script, policy="OnFailure")))  # idempotent
        st = await h.wait("r", "a restart", lambda s: s.containers[0].restart_count >= 1)
        last = st.containers[0].last_termination
        assert (last.exit_code, last.reason) == (3, "Error")
        assert await h.logs("r", previous=True) == b"hi from volume\noops\n"
        assert await h.logs("r", previous=True, stream=pb.LOG_STREAM_STDERR) == b"oops\n"
        assert await h.logs("r", previous=True, tail_lines=1) == b"oops\n"
        await h.stub.DeletePod(pb.DeletePodRequest(uid="r", grace_period_seconds=0))
        await h.wait("r", "removal", lambda s: s == grpc.StatusCode.NOT_FOUND)
        assert not any(provider.workdir.iterdir()), "the pod's folder is removed"

    with_provider(tmp_path, scenario)


def test_exec_stats_and_graceful_delete(tmp_path):
    # The process ignores SIGTERM: DeletePod must SIGKILL it after the 1 s grace period.
    marker = tmp_path / "got-term"
    script = f"trap 'echo TERM > {marker}' TERM; while :; do sleep 0.1; done"

    async def scenario(h, provider):
        await h.stub.CreatePod(pb.CreatePodRequest(pod=make_pod("g", script, grace=1)))
        await h.wait("g", "running", lambda s: s.containers[0].state.HasField("running"))
        assert await h.exec("g", ["sh", "-c", "echo $GREETING; cat etc/cfg/sub/x.txt"]) == (b"hi\nfrom volume\n", 0)
        assert await h.exec("g", ["sh", "-c", "exit 3"]) == (b"", 3)
        stats = await h.stub.GetStats(pb.GetStatsRequest())
        [pod] = [p for p in stats.pods if p.uid == "g"]
        assert pod.containers[0].memory.working_set_bytes > 0
        assert stats.node.cpu.usage_core_nanoseconds > 0

        watch = h.stub.WatchPodStatus(pb.WatchPodStatusRequest())
        while not (await watch.read()).HasField("initial_sync_complete"):
            pass
        started = time.monotonic()
        await h.stub.DeletePod(pb.DeletePodRequest(uid="g"))  # grace from the pod: 1 s
        revision = 0
        while True:
            event = await asyncio.wait_for(watch.read(), 10)
            if event.HasField("removed"):
                break
            assert event.status.revision > revision
            revision = event.status.revision
            if terminated(event.status):
                term = event.status.containers[0].state.terminated
                took = time.monotonic() - started
        assert (term.exit_code, term.signal) == (137, 9), term
        assert 0.9 < took < 5, took
        assert marker.read_text() == "TERM\n"
        watch.cancel()

    with_provider(tmp_path, scenario)


def test_container_ends_with_its_main_process(tmp_path):
    # The background sleep keeps the output pipes open; the container still ends with `sh`.
    async def scenario(h, provider):
        started = time.monotonic()
        await h.stub.CreatePod(pb.CreatePodRequest(pod=make_pod("bg", "sleep 30 & echo started; exit 4")))
        st = await h.wait("bg", "termination", terminated)
        assert st.containers[0].state.terminated.exit_code == 4
        assert time.monotonic() - started < 5
        assert await h.logs("bg") == b"started\n"

    with_provider(tmp_path, scenario)


def test_unknown_pod_and_container(tmp_path):
    async def scenario(h, provider):
        with pytest.raises(grpc.aio.AioRpcError) as e:
            await h.logs("nope")
        assert e.value.code() == grpc.StatusCode.NOT_FOUND
        await h.stub.CreatePod(pb.CreatePodRequest(pod=make_pod("u", "sleep 30")))
        with pytest.raises(grpc.aio.AioRpcError) as e:
            await h.stub.GetContainerLogs(pb.GetContainerLogsRequest(uid="u", container="other")).read()
        assert e.value.code() == grpc.StatusCode.NOT_FOUND
        await h.stub.DeletePod(pb.DeletePodRequest(uid="nope"))  # unknown UID: OK
        bad = make_pod("b", "true")
        bad.pod_json = b"{"
        with pytest.raises(grpc.aio.AioRpcError) as e:
            await h.stub.CreatePod(pb.CreatePodRequest(pod=bad))
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    with_provider(tmp_path, scenario)
