"""Client channels to a provider's Unix socket.

gRPC C-core clients (grpcio) send the socket path as `:authority`, which tonic servers (vk-host's
side, Rust providers) reject with PROTOCOL_ERROR; these helpers set
`grpc.default_authority=localhost`, which every server accepts."""

import os

import grpc

from .v1 import provider_pb2_grpc

MAX_MESSAGE_BYTES = 64 * 1024 * 1024

CHANNEL_OPTIONS = [
    ("grpc.default_authority", "localhost"),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
]


def _target(path: str) -> str:
    return "unix://" + os.path.abspath(path)


def dial(path: str) -> grpc.aio.Channel:
    """An asyncio channel to the provider socket at `path` (connects on first use)."""
    return grpc.aio.insecure_channel(_target(path), options=CHANNEL_OPTIONS)


def dial_sync(path: str) -> grpc.Channel:
    """A blocking channel to the provider socket at `path` (connects on first use)."""
    return grpc.insecure_channel(_target(path), options=CHANNEL_OPTIONS)


def stub(channel) -> provider_pb2_grpc.ProviderServiceStub:
    """The ProviderService stub on `channel`."""
    return provider_pb2_grpc.ProviderServiceStub(channel)
