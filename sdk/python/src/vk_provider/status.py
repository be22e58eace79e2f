"""StatusHub: the pod-status bookkeeping every provider needs. It keeps the last status of every
pod, stamps each published status with a larger revision and this process's provider instance,
and serves WatchPodStatus (snapshot, one initial_sync_complete, then every change in order) to
any number of watchers. Use it from the event loop thread only."""

import asyncio
import uuid
from typing import AsyncIterator, Optional

import grpc

from .v1 import provider_pb2 as pb


class StatusHub:
    def __init__(self) -> None:
        self.instance = uuid.uuid4().hex
        self._revision = 0
        self._pods: dict[str, pb.PodStatus] = {}
        self._watchers: set[asyncio.Queue] = set()
        self._closed = False

    def publish(self, status: pb.PodStatus) -> pb.PodStatus:
        """Records a copy of `status` as its pod's current status (keyed by `uid`), with the next
        revision and the instance ID, sends it to every watcher and returns the copy."""
        st = pb.PodStatus()
        st.CopyFrom(status)
        self._revision += 1
        st.revision = self._revision
        st.provider_instance = self.instance
        self._pods[st.uid] = st
        self._broadcast(pb.WatchPodStatusResponse(status=st))
        return st

    def remove(self, uid: str) -> bool:
        """Forgets a pod and sends `removed`; returns whether the pod was known."""
        st = self._pods.pop(uid, None)
        if st is None:
            return False
        self._broadcast(
            pb.WatchPodStatusResponse(
                removed=pb.PodRemoved(uid=uid, namespace=st.namespace, name=st.name)
            )
        )
        return True

    def get(self, uid: str) -> Optional[pb.PodStatus]:
        """A copy of the pod's current status, or None."""
        st = self._pods.get(uid)
        if st is None:
            return None
        out = pb.PodStatus()
        out.CopyFrom(st)
        return out

    def list(self) -> list[pb.PodStatus]:
        """Copies of every pod's current status, ordered by UID."""
        return [self.get(uid) for uid in sorted(self._pods)]

    async def get_pod_status(self, uid: str, context: grpc.aio.ServicerContext) -> pb.GetPodStatusResponse:
        """Answers GetPodStatus: the status, or NOT_FOUND."""
        st = self.get(uid)
        if st is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"pod {uid} not found")
        return pb.GetPodStatusResponse(status=st)

    async def watch(self) -> AsyncIterator[pb.WatchPodStatusResponse]:
        """Answers WatchPodStatus. grpc.aio wants the servicer method itself to be an async
        generator: `async for event in hub.watch(): yield event`."""
        queue: asyncio.Queue = asyncio.Queue()
        snapshot = self.list()  # taken and registered without an await in between: nothing lost
        for st in snapshot:
            queue.put_nowait(pb.WatchPodStatusResponse(status=st))
        queue.put_nowait(
            pb.WatchPodStatusResponse(
                initial_sync_complete=pb.InitialSyncComplete(pod_count=len(snapshot))
            )
        )
        if self._closed:
            queue.put_nowait(None)
        self._watchers.add(queue)
        try:
            while (event := await queue.get()) is not None:
                yield event
        finally:
            self._watchers.discard(queue)

    def close(self) -> None:
        """Ends every watch (their streams end with OK) so that a graceful stop need not wait for
        them; call it from your `shutdown()`. Publishing after close is allowed."""
        self._closed = True
        self._broadcast(None)

    def _broadcast(self, event: pb.WatchPodStatusResponse) -> None:
        for queue in self._watchers:
            queue.put_nowait(event)
