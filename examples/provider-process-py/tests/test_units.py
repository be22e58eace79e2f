"""Unit tests of the process provider's pure logic: /proc parsing, path mapping of mounts,
the pod model (argv, environment, restart policy) and INVALID_ARGUMENT cases."""

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

import procfs
from pods import IDLE, Pod, safe_join
from vk_provider import pb

STAT = "4242 (my (odd) prog) S 1 4242 4242 0 -1 4194560 100 0 0 0 7 3 5 1 20 0 1 0 12345 1000000 250 18446744073709551615"


def test_parse_stat_counts_fields_after_the_last_paren():
    st = procfs.parse_stat(STAT)
    assert st == procfs.ProcStat(session=4242, cpu_ticks=10, children_ticks=6, rss_pages=250)


def test_parse_meminfo_and_cpu():
    mem = procfs.parse_meminfo("MemTotal:       2048 kB\nMemAvailable:   1024 kB\nHugePages_Total:       0\n")
    assert mem == {"MemTotal": 2048 * 1024, "MemAvailable": 1024 * 1024, "HugePages_Total": 0}
    busy, boot = procfs.parse_cpu_and_boot("cpu  1 2 3 100 5 6 7 8 0 0\ncpu0 1 2 3 100 5 6 7 8 0 0\nbtime 1700000000\n")
    assert (busy, boot) == (1 + 2 + 3 + 6 + 7 + 8, 1700000000)


def test_session_usage_of_a_child_session():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"], start_new_session=True)
    try:
        for _ in range(100):  # the child calls setsid() right after fork: wait for it
            usage = procfs.session_usage(child.pid)
            if usage.rss_bytes > 0:
                break
            time.sleep(0.02)
        assert usage.rss_bytes > 0 and usage.cpu_ns >= 0
    finally:
        child.kill()
        child.wait()


def test_safe_join():
    base = Path("/w")
    assert safe_join(base, "/etc/conformance") == Path("/w/etc/conformance")
    assert safe_join(base, "a/./b") == Path("/w/a/b")
    for bad in ("/", "", "../x", "/a/../../b"):
        with pytest.raises(ValueError):
            safe_join(base, bad)


def pod(policy="Always", mounts=(), command=("sleep", "1"), args=(), init=False):
    container = {"name": "main", "volumeMounts": list(mounts)}
    spec = {"restartPolicy": policy, "containers": [container]}
    p = pb.Pod(uid="u1", namespace="ns", name="p", host_ip="10.0.0.5", pod_json=json.dumps({"spec": spec}).encode())
    rc = p.init_containers.add() if init else p.containers.add()
    rc.name, rc.image = "main", "busybox"
    rc.command.extend(command)
    rc.args.extend(args)
    rc.env.add(name="A", value="1")
    rc.pod_ip_env.append("MY_IP")
    return p


def test_pod_model(tmp_path):
    m = Pod(pod(mounts=[{"name": "cfg", "mountPath": "/etc/cfg"}, {"name": "cfg", "mountPath": "/one", "subPath": "x.txt"}]), tmp_path)
    c = m.app[0]
    assert c.argv == ["sleep", "1"]
    assert c.root == tmp_path / "ns_p_u1" / "containers" / "main"
    assert c.mounts == [(c.root / "etc/cfg", m.root / "volumes/cfg"), (c.root / "one", m.root / "volumes/cfg/x.txt")]
    assert c.env["A"] == "1" and c.env["MY_IP"] == "10.0.0.5" and c.env["VK_ROOT"] == str(c.root)
    assert c.status.state.waiting.reason == "ContainerCreating"
    assert Pod(pod(command=(), args=()), tmp_path).app[0].argv == IDLE
    assert Pod(pod(command=(), args=("echo", "x")), tmp_path).app[0].argv == ["echo", "x"]


def test_restart_policy(tmp_path):
    always, onfail, never = (Pod(pod(policy=p), tmp_path) for p in ("Always", "OnFailure", "Never"))
    assert always.restarts(0, False) and always.restarts(1, False)
    assert not onfail.restarts(0, False) and onfail.restarts(1, False)
    assert not never.restarts(1, False)
    assert onfail.restarts(1, True) and not never.restarts(1, True) and not always.restarts(0, True)


def test_invalid_pods(tmp_path):
    with pytest.raises(ValueError):
        Pod(pod(mounts=[{"name": "v", "mountPath": "/a/../../etc"}]), tmp_path)
    bad = pod()
    bad.pod_json = b"{"
    with pytest.raises(ValueError):
        Pod(bad, tmp_path)
