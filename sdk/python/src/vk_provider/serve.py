"""Serving a provider on a Unix socket, the way vk-host expects it: a stale socket left by a
previous run is removed (a live one, or a path that is not a socket, is refused), the socket is
private (mode 0600), the standard gRPC health service answers SERVING, and SIGTERM/SIGINT stop the
server gracefully and remove the socket file."""

import argparse
import asyncio
import logging
import os
import signal
import socket
import stat
from typing import Awaitable, Callable, Optional

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from .client import MAX_MESSAGE_BYTES
from .v1 import provider_pb2_grpc

SERVICE_NAME = "vk.provider.v1.ProviderService"
DEFAULT_SOCKET = "/run/vk/provider.sock"

log = logging.getLogger("vk_provider")


class SocketInUse(RuntimeError):
    """Another process answers on the socket path."""


def prepare_socket(path: str) -> None:
    """Makes `path` ready to bind: removes a stale socket, refuses a live socket or a non-socket,
    creates the parent folder."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        st = None
    if st is not None:
        if not stat.S_ISSOCK(st.st_mode):
            raise FileExistsError(f"{path} exists and is not a socket; refusing to remove it")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        probe.settimeout(1.0)
        try:
            probe.connect(path)
        except OSError:
            live = False  # connection refused: nobody listens, the socket is stale
        else:
            live = True
        finally:
            probe.close()
        if live:
            raise SocketInUse(f"another process is already serving on {path}")
        log.info("removing stale socket %s", path)
        os.unlink(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)


async def serve(
    servicer: provider_pb2_grpc.ProviderServiceServicer,
    socket_path: str,
    *,
    socket_mode: int = 0o600,
    grace: float = 5.0,
    stop: Optional[asyncio.Event] = None,
    on_shutdown: Optional[Callable[[], Awaitable[None]]] = None,
) -> None:
    """Serves `servicer` on the Unix socket at `socket_path` until SIGTERM, SIGINT or `stop` is
    set. Then health turns NOT_SERVING, `on_shutdown` runs (stop your backend work there), open
    calls get `grace` seconds to finish (watch streams are cancelled after it) and the socket
    file is removed."""
    prepare_socket(socket_path)
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ]
    )
    provider_pb2_grpc.add_ProviderServiceServicer_to_server(servicer, server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for name in ("", SERVICE_NAME):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)

    old_umask = os.umask(0o177)  # private from the moment it is bound
    try:
        server.add_insecure_port("unix:" + socket_path)
        await server.start()
    finally:
        os.umask(old_umask)
    os.chmod(socket_path, socket_mode)

    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = (signal.SIGTERM, signal.SIGINT)
    for sig in signals:
        loop.add_signal_handler(sig, stop.set)
    log.info("provider serving on %s", socket_path)
    try:
        await stop.wait()
        log.info("shutting down")
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
        await health_servicer.enter_graceful_shutdown()
        try:
            if on_shutdown is not None:
                await on_shutdown()
        finally:
            await server.stop(grace)
            try:
                os.unlink(socket_path)
            except FileNotFoundError:
                pass
            log.info("provider stopped")


def run(
    make_servicer: Callable[[argparse.Namespace], provider_pb2_grpc.ProviderServiceServicer],
    *,
    description: str = "",
    add_arguments: Optional[Callable[[argparse.ArgumentParser], None]] = None,
    argv: Optional[list] = None,
) -> None:
    """The whole `main` of a provider: parses `--socket PATH` (default $VK_PROVIDER_SOCKET or
    /run/vk/provider.sock) plus your own options, builds the servicer inside the event loop and
    serves it. If the servicer has an async `shutdown()` method, it runs on SIGTERM."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--socket",
        default=os.environ.get("VK_PROVIDER_SOCKET", DEFAULT_SOCKET),
        help="Unix socket to serve on (default: %(default)s)",
    )
    if add_arguments is not None:
        add_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=os.environ.get("VK_LOG_LEVEL", "INFO").upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )

    async def main() -> None:
        servicer = make_servicer(args)
        await serve(servicer, args.socket, on_shutdown=getattr(servicer, "shutdown", None))

    asyncio.run(main())
