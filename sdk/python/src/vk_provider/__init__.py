"""SDK for writing vk providers in Python.

- `pb`, `pb_grpc`: the generated vk.provider.v1 messages, servicer base class and stub.
- `serve`, `run`: serve a provider on a Unix socket (stale socket removed, mode 0600, gRPC
  health, graceful stop on SIGTERM/SIGINT); `run` also parses `--socket`.
- `dial`, `dial_sync`: client channels to a provider socket (they set
  `grpc.default_authority=localhost`, which tonic servers require).
- `StatusHub`: WatchPodStatus/GetPodStatus/ListPods bookkeeping with revisions and fan-out.
- `logs`: CRI-style log files and the `kubectl logs` options (tail, since, stream, follow).
- `exec_process`, `recv_exec_start`: serve Exec by running a local process.
"""

from .v1 import provider_pb2 as pb
from .v1 import provider_pb2_grpc as pb_grpc
from .client import dial, dial_sync
from .exec import exec_process, recv_exec_start
from .serve import MAX_MESSAGE_BYTES, SocketInUse, prepare_socket, run, serve
from .status import StatusHub
from . import logs

CONTRACT_VERSION = "v1"
"""The contract version this SDK speaks (HandshakeResponse.contract_versions)."""

CONTRACT_REVISION = 1
"""The additive revision of the v1 contract this SDK was generated from (see proto/README.md)."""

__all__ = [
    "CONTRACT_REVISION",
    "CONTRACT_VERSION",
    "MAX_MESSAGE_BYTES",
    "SocketInUse",
    "StatusHub",
    "dial",
    "dial_sync",
    "exec_process",
    "logs",
    "pb",
    "pb_grpc",
    "prepare_socket",
    "recv_exec_start",
    "run",
    "serve",
]
