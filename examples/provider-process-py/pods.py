"""The process provider's model of a pod: its containers' argv, environment and folders, where
volume files go, and the restart policy. Creating a Pod validates everything (errors are
ValueError with a message for the user); `prepare()` writes the files.

Folder layout under the provider's workdir, per pod:
  <ns>_<name>_<uid>/volumes/<volume>/...          files of configMap/secret/downwardAPI/projected
                                                  volumes; an empty folder for other volume types
  <ns>_<name>_<uid>/containers/<container>/       the container's root ($VK_ROOT); a volumeMount
                                                  at /a/b is a symlink <root>/a/b -> the volume
  <ns>_<name>_<uid>/logs/<container>.<n>.log      output of instance n (0, 1, ... per restart)
"""

import json
import os
import sys
from pathlib import Path, PurePosixPath

from vk_provider import pb

# A container with neither command nor args idles, like `sleep infinity`.
IDLE = [sys.executable, "-c", "import signal; signal.pause()"]


def safe_join(base: Path, rel: str) -> Path:
    """base/rel for an absolute or relative '/'-separated path; refuses '..' and the root."""
    parts = [p for p in PurePosixPath(rel).parts if p not in ("/", ".")]
    if not parts or ".." in parts:
        raise ValueError(f"path {rel!r} is not supported (empty, '/' or containing '..')")
    return base.joinpath(*parts)


class Container:
    def __init__(self, rc: pb.ResolvedContainer, spec: dict, pod: "Pod", init: bool):
        self.name, self.init = rc.name, init
        self.argv = list(rc.command) + list(rc.args) or IDLE
        self.root = safe_join(pod.root / "containers", rc.name)
        self.cwd = safe_join(self.root, spec["workingDir"]) if spec.get("workingDir") else self.root
        self.mounts = []  # (link, target)
        for m in spec.get("volumeMounts", []):
            target = safe_join(pod.root / "volumes", m["name"])
            if m.get("subPath"):
                target = safe_join(target, m["subPath"])
            self.mounts.append((safe_join(self.root, m["mountPath"]), target))
        self.env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.root), "HOSTNAME": pod.spec.name}
        self.env.update((e.name, e.value) for e in rc.env)
        self.env.update((name, pod.ip) for name in rc.pod_ip_env)
        self.env["VK_ROOT"] = str(self.root)
        self.status = pb.ContainerStatus(name=rc.name, image=rc.image)
        self.status.state.waiting.reason = "PodInitializing" if pod.spec.init_containers and not init else "ContainerCreating"
        self.proc = None  # the running instance's asyncio.subprocess.Process
        self.instance_over = False  # the current instance ended and its output is all written
        self.cpu_ns = 0  # highest CPU time seen for the instance: reported values never decrease

    def log_path(self, instance: int) -> Path:
        return self.root.parent.parent / "logs" / f"{self.name}.{instance}.log"

    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None


class Pod:
    def __init__(self, spec: pb.Pod, workdir: Path):
        try:
            info = json.loads(spec.pod_json or b"{}")
        except ValueError as e:
            raise ValueError(f"pod_json is not JSON: {e}") from None
        podspec = info.get("spec") or {}
        self.spec = spec
        self.policy = podspec.get("restartPolicy") or "Always"
        self.grace = podspec.get("terminationGracePeriodSeconds", 30)
        self.ip = spec.host_ip  # processes share the host's network
        self.root = workdir / f"{spec.namespace}_{spec.name}_{spec.uid}".replace("/", "_")
        specs = {c.get("name"): c for c in podspec.get("initContainers", []) + podspec.get("containers", [])}
        self.init = [Container(rc, specs.get(rc.name, {}), self, True) for rc in spec.init_containers]
        self.app = [Container(rc, specs.get(rc.name, {}), self, False) for rc in spec.containers]
        self.start_time = None
        self.deleting = False
        self.task = None  # the asyncio task running the containers

    def containers(self) -> list:
        return self.init + self.app

    def find(self, name: str):
        return next((c for c in self.containers() if c.name == name), None)

    def restarts(self, code: int, init: bool) -> bool:
        """Whether a container that exited with `code` runs again (init containers until they succeed)."""
        if init:
            return code != 0 and self.policy != "Never"
        return self.policy == "Always" or (self.policy == "OnFailure" and code != 0)

    def prepare(self) -> None:
        """Writes the volume files and each container's folders and mount links."""
        for vol in self.spec.volumes:
            for f in vol.files:
                path = safe_join(safe_join(self.root / "volumes", vol.name), f.path)
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(f.content)
                path.chmod(f.mode or 0o644)
        for c in self.containers():
            for link, target in c.mounts:
                if not target.exists():
                    target.mkdir(parents=True)  # emptyDir and other types: an empty folder
                link.parent.mkdir(parents=True, exist_ok=True)
                if not link.is_symlink():
                    link.symlink_to(target)
            c.cwd.mkdir(parents=True, exist_ok=True)
            c.log_path(0).parent.mkdir(parents=True, exist_ok=True)

    def status(self) -> pb.PodStatus:
        st = pb.PodStatus(uid=self.spec.uid, namespace=self.spec.namespace, name=self.spec.name)
        if self.ip:
            st.pod_ips.append(self.ip)
        if self.start_time is not None:
            st.start_time.CopyFrom(self.start_time)
        st.init_containers.extend(c.status for c in self.init)
        st.containers.extend(c.status for c in self.app)
        return st
