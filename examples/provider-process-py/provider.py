#!/usr/bin/env python3
"""provider-process-py: an example vk provider that runs each container's command as a local
process (images are ignored), with its volume files and resolved environment, real logs, exec,
exit codes, restarts and CPU/memory stats. Built on the Python SDK (sdk/python); see README.md.

    run --socket /run/vk/provider.sock [--workdir DIR]
"""

import asyncio
import os
import platform
import shutil
import signal
import tempfile
from pathlib import Path

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

import procfs
import vk_provider
from pods import Pod
from vk_provider import logs, pb, pb_grpc


def now() -> Timestamp:
    ts = Timestamp()
    ts.GetCurrentTime()
    return ts


def kill_group(pid: int, sig: int) -> None:
    """Signals a container's whole process group (its main process leads it)."""
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


async def end_with_main_process(proc) -> None:
    """A container ends with its main process: then kill what it left running in its group."""
    while proc.returncode is None:
        await asyncio.sleep(0.1)
    kill_group(proc.pid, signal.SIGKILL)


class ProcessProvider(pb_grpc.ProviderServiceServicer):
    def __init__(self, workdir: Path, remove_workdir: bool = False):
        self.workdir, self.remove_workdir = workdir, remove_workdir
        self.hub = vk_provider.StatusHub()
        self.pods: dict[str, Pod] = {}

    async def Handshake(self, request, context):
        total = procfs.node_usage()[2]
        arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
        return pb.HandshakeResponse(
            provider_name="process", provider_version="0.1.0",
            contract_versions=[vk_provider.CONTRACT_VERSION], contract_revision=vk_provider.CONTRACT_REVISION,
            capabilities=[pb.CAPABILITY_LOGS, pb.CAPABILITY_LOGS_PREVIOUS, pb.CAPABILITY_EXEC, pb.CAPABILITY_STATS],
            node=pb.NodeTemplate(
                capacity={"cpu": str(os.cpu_count() or 1), "memory": f"{total // 1024}Ki", "pods": "110"},
                operating_system="linux", architecture=arch,
                system_info=pb.NodeSystemInfo(kernel_version=platform.release(), os_image="local processes"),
            ),
        )

    async def CreatePod(self, request, context):
        if request.pod.uid in self.pods:
            return pb.CreatePodResponse()  # idempotent by UID
        try:
            pod = Pod(request.pod, self.workdir)
        except (ValueError, KeyError, TypeError) as e:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"cannot run pod: {e}")
        try:
            pod.prepare()
        except OSError as e:
            shutil.rmtree(pod.root, ignore_errors=True)
            await context.abort(grpc.StatusCode.INTERNAL, f"writing the pod's files: {e}")
        pod.start_time = now()
        self.pods[pod.spec.uid] = pod
        self.hub.publish(pod.status())
        pod.task = asyncio.create_task(self.run_pod(pod))
        return pb.CreatePodResponse()

    async def run_pod(self, pod: Pod) -> None:
        try:
            for c in pod.init:
                if await self.run_container(pod, c) != 0:
                    return  # an init container failed for good, or the pod was deleted
            await asyncio.gather(*(self.run_container(pod, c) for c in pod.app))
        finally:
            if pod.deleting:
                self.forget(pod)

    async def run_container(self, pod: Pod, c) -> int:
        """Runs instances of c until one ends without a restart; returns its exit code."""
        while True:
            code = await self.run_once(pod, c)
            if pod.deleting or not pod.restarts(code, c.init):
                return code
            delay = min(2 ** c.status.restart_count, 30)
            c.status.last_termination.CopyFrom(c.status.state.terminated)
            c.status.state.waiting.CopyFrom(pb.ContainerStateWaiting(
                reason="CrashLoopBackOff", message=f"back-off {delay}s restarting container {c.name}"))
            self.hub.publish(pod.status())
            for _ in range(delay * 10):  # sleep, but wake up for a DeletePod
                if pod.deleting:
                    return code
                await asyncio.sleep(0.1)
            c.status.restart_count += 1

    async def run_once(self, pod: Pod, c) -> int:
        if pod.deleting:
            return 137
        instance, started = c.status.restart_count, now()
        c.instance_over, c.cpu_ns = False, 0
        try:
            c.proc = await asyncio.create_subprocess_exec(
                *c.argv, cwd=c.cwd, env=c.env, stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, start_new_session=True)
        except OSError as e:
            c.instance_over = True
            c.status.state.terminated.CopyFrom(pb.ContainerStateTerminated(
                exit_code=128, reason="StartError", message=f"{c.argv[0]}: {e.strerror}",
                started_at=started, finished_at=now()))
            self.hub.publish(pod.status())
            return 128
        c.status.state.running.started_at.CopyFrom(started)
        c.status.ready, c.status.started = not c.init, True
        c.status.container_id = f"process://{c.proc.pid}"
        self.hub.publish(pod.status())
        if pod.deleting:
            kill_group(c.proc.pid, signal.SIGKILL)
        with open(c.log_path(instance), "ab") as f:
            pumps = asyncio.gather(logs.pump(c.proc.stdout, logs.LogWriter(f, pb.LOG_STREAM_STDOUT)),
                                   logs.pump(c.proc.stderr, logs.LogWriter(f, pb.LOG_STREAM_STDERR)))
            reaper = asyncio.create_task(end_with_main_process(c.proc))
            rc = await c.proc.wait()  # (asyncio's wait also waits for the pipes to close)
            await asyncio.gather(pumps, reaper)
        c.instance_over = True
        code, sig = (rc, 0) if rc >= 0 else (128 - rc, -rc)
        c.status.ready, c.status.started = False, False
        c.status.state.terminated.CopyFrom(pb.ContainerStateTerminated(
            exit_code=code, signal=sig, reason="Completed" if code == 0 else "Error",
            started_at=started, finished_at=now(), container_id=c.status.container_id))
        self.hub.publish(pod.status())
        return code

    async def DeletePod(self, request, context):
        pod = self.pods.get(request.uid)
        if pod is None or pod.deleting:
            return pb.DeletePodResponse()
        grace = request.grace_period_seconds if request.HasField("grace_period_seconds") else pod.grace
        pod.deleting = True
        for c in pod.containers():
            if c.running():
                kill_group(c.proc.pid, signal.SIGTERM if grace > 0 else signal.SIGKILL)
            elif not c.status.state.HasField("terminated"):
                c.instance_over = True
                c.status.state.terminated.CopyFrom(pb.ContainerStateTerminated(
                    exit_code=137, reason="Cancelled", message="pod deleted while the container was not running",
                    finished_at=now()))
        self.hub.publish(pod.status())
        if pod.task.done():
            self.forget(pod)
        elif grace > 0:
            asyncio.create_task(self.kill_after(pod, grace))
        return pb.DeletePodResponse()

    async def kill_after(self, pod: Pod, grace: float) -> None:
        await asyncio.sleep(grace)
        for c in pod.containers():
            if c.running():
                kill_group(c.proc.pid, signal.SIGKILL)

    def forget(self, pod: Pod) -> None:
        self.hub.remove(pod.spec.uid)
        self.pods.pop(pod.spec.uid, None)
        shutil.rmtree(pod.root, ignore_errors=True)

    async def GetPodStatus(self, request, context):
        return await self.hub.get_pod_status(request.uid, context)

    async def ListPods(self, request, context):
        return pb.ListPodsResponse(pods=self.hub.list())

    async def WatchPodStatus(self, request, context):
        async for event in self.hub.watch():
            yield event

    async def container(self, uid: str, name: str, context):
        pod = self.pods.get(uid)
        c = pod.find(name) if pod else None
        if c is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"pod {uid} has no container {name!r}" if pod else f"pod {uid} not found")
        return c

    async def GetContainerLogs(self, request, context):
        c = await self.container(request.uid, request.container, context)
        instance = c.status.restart_count
        if request.previous:
            if instance == 0:
                await context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"container {c.name} has not restarted")
            instance -= 1
        live = lambda: not request.previous and c.status.restart_count == instance and not c.instance_over  # noqa: E731
        async for msg in logs.serve_log_file(str(c.log_path(instance)), request, live):
            yield msg

    async def Exec(self, request_iterator, context):
        start = await vk_provider.recv_exec_start(request_iterator, context)
        c = await self.container(start.uid, start.container, context)
        if not c.running():
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"container {c.name} is not running")
        async for msg in vk_provider.exec_process(request_iterator, start, list(start.command), cwd=str(c.cwd), env=c.env):
            yield msg

    async def GetStats(self, request, context):
        t = now()
        cpu_ns, used, total, boot = procfs.node_usage()
        node = pb.NodeStats(cpu=pb.CpuStats(time=t, usage_core_nanoseconds=cpu_ns),
                            memory=pb.MemoryStats(time=t, working_set_bytes=used, available_bytes=total - used))
        node.start_time.FromSeconds(boot)
        reply = pb.GetStatsResponse(node=node)
        for pod in self.pods.values():
            stats = pb.PodStats(uid=pod.spec.uid, namespace=pod.spec.namespace, name=pod.spec.name, start_time=pod.start_time)
            for c in pod.containers():
                if not c.running():
                    continue
                usage = procfs.session_usage(c.proc.pid)
                if usage.rss_bytes == 0:
                    continue  # just exec'd, nothing mapped yet: report it from the next sample
                c.cpu_ns = max(c.cpu_ns, usage.cpu_ns)
                stats.containers.add(
                    name=c.name, start_time=c.status.state.running.started_at,
                    cpu=pb.CpuStats(time=t, usage_core_nanoseconds=c.cpu_ns),
                    memory=pb.MemoryStats(time=t, working_set_bytes=usage.rss_bytes, rss_bytes=usage.rss_bytes))
            if stats.containers:
                reply.pods.append(stats)
        return reply

    async def shutdown(self) -> None:
        """On SIGTERM: the pods' processes stop with the provider (vk-host re-creates the pods)."""
        self.hub.close()
        procs = [c.proc for pod in self.pods.values() for c in pod.containers() if c.running()]
        for proc in procs:
            kill_group(proc.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(asyncio.gather(*(p.wait() for p in procs)), 5)
        except asyncio.TimeoutError:
            for proc in procs:
                kill_group(proc.pid, signal.SIGKILL)
        if self.remove_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)


def make_provider(args) -> ProcessProvider:
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="provider-process-"))
    workdir.mkdir(parents=True, exist_ok=True)
    return ProcessProvider(workdir.resolve(), remove_workdir=not args.workdir)


if __name__ == "__main__":
    vk_provider.run(
        make_provider,
        description="vk provider running containers as local processes",
        add_arguments=lambda p: p.add_argument("--workdir", help="folder for the pods' files (default: a new temporary folder)"),
    )
