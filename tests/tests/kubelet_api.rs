//! End-to-end: the kubelet API of a virtual node, through the real API server, with real
//! `kubectl`, real metrics-server and the real HPA controller. Each test runs its own virtual node
//! (vk-host + provider-mock) and namespace on the shared cluster.

use std::{
    process::Stdio,
    time::{Duration, Instant},
};

use k8s_openapi::api::{apps::v1::Deployment, core::v1::Pod};
use kube::{
    Api,
    api::{AttachParams, ListParams, PostParams},
};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use vk_tests::{
    TestNamespace, shared,
    virtual_node::{NodeOptions, VirtualNode},
    wait::eventually,
};

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

struct Env {
    node: VirtualNode,
    ns: TestNamespace,
    cluster: std::sync::Arc<vk_tests::Cluster>,
}

async fn setup(test: &str) -> Result<Env, Box<dyn std::error::Error + Send + Sync>> {
    let cluster = shared::cluster().await?;
    let node =
        VirtualNode::start(&cluster, &format!("vk-api-{test}"), NodeOptions::default()).await?;
    let ns = shared::namespace(test).await?;
    let name = node.name.clone();
    cluster_wait_ready(&cluster, &name)
        .await
        .map_err(|e| format!("{e}\n--- vk-host log ---\n{}", node.host_log_tail()))?;
    Ok(Env { node, ns, cluster })
}

async fn cluster_wait_ready(cluster: &vk_tests::Cluster, node: &str) -> Result<(), String> {
    eventually(
        &format!("node {node} Ready"),
        Duration::from_secs(60),
        || async {
            let out = cluster
                .kubectl(&[
                    "get",
                    "node",
                    node,
                    "-o",
                    "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
                ])
                .await
                .ok()?;
            (out.trim() == "True").then_some(())
        },
    )
    .await
}

fn pod_json(
    name: &str,
    node: &str,
    annotations: serde_json::Value,
    container: serde_json::Value,
) -> serde_json::Value {
    let mut c = json!({"name": "app", "image": "busybox", "ports": [{"containerPort": 8080}]});
    if let (Some(c), Some(extra)) = (c.as_object_mut(), container.as_object()) {
        for (k, v) in extra {
            c.insert(k.clone(), v.clone());
        }
    }
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "annotations": annotations, "labels": {"app": name}},
        "spec": {
            "nodeSelector": {"kubernetes.io/hostname": node},
            "tolerations": [{"key": "virtual-kubelet.io/provider", "operator": "Exists", "effect": "NoSchedule"}],
            "containers": [c],
        }
    })
}

async fn running_pod(
    env: &Env,
    name: &str,
    annotations: serde_json::Value,
) -> Result<Pod, Box<dyn std::error::Error + Send + Sync>> {
    let pods: Api<Pod> = env.ns.api();
    let pod: Pod = serde_json::from_value(pod_json(name, &env.node.name, annotations, json!({})))?;
    pods.create(&PostParams::default(), &pod).await?;
    let p = eventually(
        &format!("pod {name} Running"),
        Duration::from_secs(60),
        || async {
            let p = pods.get_opt(name).await.ok()??;
            (p.status.as_ref()?.phase.as_deref()? == "Running").then_some(p)
        },
    )
    .await?;
    Ok(p)
}

/// Runs kubectl in the test namespace; returns (status code, stdout, stderr).
async fn kubectl(
    env: &Env,
    args: &[&str],
    stdin: Option<&[u8]>,
) -> Result<(i32, String, String), Box<dyn std::error::Error + Send + Sync>> {
    let mut cmd = env.cluster.kubectl_command();
    cmd.arg("-n")
        .arg(env.ns.name())
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(Stdio::piped());
    let mut child = cmd.spawn()?;
    if let Some(mut sin) = child.stdin.take() {
        if let Some(data) = stdin {
            sin.write_all(data).await?;
        }
        drop(sin);
    }
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output()).await??;
    Ok((
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

#[tokio::test(flavor = "multi_thread")]
async fn kubectl_logs_with_tail_timestamps_previous_and_follow() -> TestResult {
    let env = setup("logs").await?;
    running_pod(&env, "talker", json!({"mock.vk.io/log-interval": "200ms"})).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (code, out, err) = kubectl(&env, &["logs", "talker"], None).await?;
    assert_eq!(
        code,
        0,
        "{err}\n--- vk-host ---\n{}",
        env.node.host_log_tail()
    );
    assert!(
        out.lines().count() >= 5 && out.contains("talker/app #0 line 0"),
        "{out}"
    );
    let (_, tail, _) = kubectl(&env, &["logs", "talker", "--tail=2"], None).await?;
    assert_eq!(tail.lines().count(), 2, "{tail}");
    let (_, ts, _) = kubectl(&env, &["logs", "talker", "--tail=1", "--timestamps"], None).await?;
    let first = ts.split_whitespace().next().unwrap_or_default();
    assert!(
        first.contains('T') && first.ends_with('Z'),
        "no RFC 3339 timestamp: {ts}"
    );
    let (_, since, _) = kubectl(&env, &["logs", "talker", "--since=1s"], None).await?;
    assert!(
        since.lines().count() < out.lines().count() + 10 && !since.contains(" line 0\n"),
        "{since}"
    );
    let (code, _, err) = kubectl(&env, &["logs", "talker", "--previous"], None).await?;
    assert_ne!(code, 0, "no previous instance yet: {err}");

    // Follow: new lines arrive while the container writes them.
    let mut cmd = env.cluster.kubectl_command();
    cmd.args(["-n", env.ns.name(), "logs", "-f", "talker", "--tail=0"])
        .stdout(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn()?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let start = Instant::now();
    let mut seen = 0;
    while seen < 3 {
        let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line()).await??;
        assert!(
            line.is_some_and(|l| l.contains("talker/app")),
            "follow ended early"
        );
        seen += 1;
    }
    assert!(
        start.elapsed() >= Duration::from_millis(300),
        "lines must arrive as written, not all at once"
    );
    let _ = child.kill().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn kubectl_exec_prints_output_passes_stdin_and_returns_the_exit_code() -> TestResult {
    let env = setup("exec").await?;
    running_pod(&env, "shell", json!({})).await?;
    let (code, out, err) = kubectl(&env, &["exec", "shell", "--", "echo", "hi"], None).await?;
    assert_eq!(
        (code, out.as_str()),
        (0, "hi\n"),
        "{err}\n--- vk-host ---\n{}",
        env.node.host_log_tail()
    );
    let (code, _, _) = kubectl(&env, &["exec", "shell", "--", "sh", "-c", "exit 3"], None).await?;
    assert_eq!(code, 3);
    let (code, out, _) = kubectl(
        &env,
        &["exec", "-i", "shell", "--", "cat"],
        Some(b"from stdin\n"),
    )
    .await?;
    assert_eq!((code, out.as_str()), (0, "from stdin\n"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn kubectl_attach_streams_the_main_process() -> TestResult {
    let env = setup("attach").await?;
    running_pod(&env, "main", json!({"mock.vk.io/log-interval": "200ms"})).await?;
    let mut cmd = env.cluster.kubectl_command();
    cmd.args(["-n", env.ns.name(), "attach", "main"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn()?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(15), lines.next_line()).await??;
    assert!(line.is_some_and(|l| l.contains("main/app")));
    let _ = child.kill().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn kubectl_port_forward_carries_bytes_both_ways() -> TestResult {
    let env = setup("pf").await?;
    running_pod(&env, "echo", json!({})).await?;
    let port = vk_tests::free_port()?;
    let mut cmd = env.cluster.kubectl_command();
    cmd.args([
        "-n",
        env.ns.name(),
        "port-forward",
        "pod/echo",
        &format!("{port}:8080"),
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .kill_on_drop(true);
    let mut child = cmd.spawn()?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    tokio::time::timeout(Duration::from_secs(20), lines.next_line()).await??; // "Forwarding from ..."
    let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    conn.write_all(b"ping over port-forward").await?;
    let mut buf = vec![0u8; 22];
    tokio::time::timeout(Duration::from_secs(10), conn.read_exact(&mut buf)).await??;
    assert_eq!(&buf, b"ping over port-forward");
    let _ = child.kill().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn exec_through_a_websocket_client_with_tty_resize() -> TestResult {
    let env = setup("ws").await?;
    running_pod(&env, "tty", json!({})).await?;
    let pods: Api<Pod> = env.ns.api();
    let mut attached = pods
        .exec(
            "tty",
            vec!["echo", "over websocket"],
            &AttachParams::default().stderr(false),
        )
        .await?;
    let mut out = String::new();
    attached
        .stdout()
        .ok_or("no stdout")?
        .read_to_string(&mut out)
        .await?;
    assert_eq!(out, "over websocket\n");
    let status = attached
        .take_status()
        .ok_or("no status")?
        .await
        .ok_or("no status")?;
    assert_eq!(status.status.as_deref(), Some("Success"));

    // With a TTY, a resize reaches the provider (the mock's `tty-size --watch` prints each size).
    let mut tty = pods
        .exec(
            "tty",
            vec!["tty-size", "--watch"],
            &AttachParams::interactive_tty(),
        )
        .await?;
    let mut resize = tty.terminal_size().ok_or("no resize channel")?;
    futures::SinkExt::send(
        &mut resize,
        kube::api::TerminalSize {
            width: 100,
            height: 40,
        },
    )
    .await?;
    let mut stdout = tty.stdout().ok_or("no stdout")?;
    let mut seen = String::new();
    let mut buf = [0u8; 256];
    let deadline = Instant::now() + Duration::from_secs(10);
    while !seen.contains("40 100") && Instant::now() < deadline {
        let n = tokio::time::timeout(Duration::from_secs(10), stdout.read(&mut buf)).await??;
        if n == 0 {
            break;
        }
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(seen.contains("40 100"), "resize not seen: {seen:?}");
    drop(tty);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn kubectl_top_shows_the_providers_numbers() -> TestResult {
    let env = setup("top").await?;
    running_pod(
        &env,
        "busy",
        json!({"mock.vk.io/cpu": "250m", "mock.vk.io/memory": "64Mi"}),
    )
    .await?;
    let node = env.node.name.clone();
    let out = eventually("kubectl top node", Duration::from_secs(120), || async {
        let (code, out, _) = kubectl(&env, &["top", "node", &node, "--no-headers"], None)
            .await
            .ok()?;
        (code == 0 && out.contains(&node)).then_some(out)
    })
    .await
    .map_err(|e| format!("{e}\n--- vk-host ---\n{}", env.node.host_log_tail()))?;
    assert!(out.contains('m') && out.contains("Mi"), "{out}");
    let out = eventually("kubectl top pod", Duration::from_secs(120), || async {
        let (code, out, _) = kubectl(&env, &["top", "pod", "busy", "--no-headers"], None)
            .await
            .ok()?;
        (code == 0 && out.contains("busy")).then_some(out)
    })
    .await?;
    let fields: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(fields.get(2).copied(), Some("64Mi"), "{out}");
    let cpu: u64 = fields
        .get(1)
        .and_then(|c| c.trim_end_matches('m').parse().ok())
        .unwrap_or(0);
    assert!(
        (200..=300).contains(&cpu),
        "cpu {cpu}m, expected about 250m: {out}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn hpa_scales_up_on_reported_cpu_and_back_down() -> TestResult {
    let env = setup("hpa").await?;
    let deployments: Api<Deployment> = env.ns.api();
    let d: Deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
          "template": {"metadata": {"labels": {"app": "web"}}, "spec": {
            "nodeSelector": {"kubernetes.io/hostname": env.node.name},
            "tolerations": [{"key": "virtual-kubelet.io/provider", "operator": "Exists", "effect": "NoSchedule"}],
            "containers": [{"name": "app", "image": "busybox", "resources": {"requests": {"cpu": "100m"}}}]}}}
    }))?;
    deployments.create(&PostParams::default(), &d).await?;
    let (code, _, err) = kubectl(
        &env,
        &[
            "autoscale",
            "deployment",
            "web",
            "--cpu=50%",
            "--min=1",
            "--max=3",
        ],
        None,
    )
    .await?;
    assert_eq!(code, 0, "{err}");
    let pods: Api<Pod> = env.ns.api();
    let first = eventually(
        "the first replica Running",
        Duration::from_secs(60),
        || async {
            let list = pods
                .list(&ListParams::default().labels("app=web"))
                .await
                .ok()?;
            list.items
                .into_iter()
                .find(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
        },
    )
    .await?;
    let name = first.metadata.name.clone().unwrap_or_default();
    // Report 400m against a 100m request: 400 % of target 50 % → scale to the maximum.
    let (code, _, err) = kubectl(&env, &["exec", &name, "--", "load", "400m"], None).await?;
    assert_eq!(code, 0, "{err}");
    eventually(
        "the HPA to scale up to 3",
        Duration::from_secs(180),
        || async { (deployments.get("web").await.ok()?.spec?.replicas? == 3).then_some(()) },
    )
    .await?;
    let (code, _, err) = kubectl(&env, &["exec", &name, "--", "load", "1m"], None).await?;
    assert_eq!(code, 0, "{err}");
    eventually(
        "the HPA to scale back down to 1",
        Duration::from_secs(240),
        || async { (deployments.get("web").await.ok()?.spec?.replicas? == 1).then_some(()) },
    )
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn kubelet_api_refuses_anonymous_and_unauthorized_callers() -> TestResult {
    let env = setup("auth").await?;
    let url = format!("https://127.0.0.1:{}/pods", env.node.kubelet_port);
    let curl = |extra: Vec<String>| {
        let url = url.clone();
        async move {
            let mut args = vec![
                "-sk".to_string(),
                "-o".into(),
                "/dev/null".into(),
                "-w".into(),
                "%{http_code}".into(),
                url,
            ];
            args.extend(extra);
            let out = tokio::process::Command::new("curl")
                .args(&args)
                .output()
                .await?;
            Ok::<String, std::io::Error>(String::from_utf8_lossy(&out.stdout).into_owned())
        }
    };
    assert_eq!(curl(vec![]).await?, "401", "anonymous must be refused");
    let ns = env.ns.name().to_string();
    let (code, _, err) = kubectl(&env, &["create", "serviceaccount", "reader"], None).await?;
    assert_eq!(code, 0, "{err}");
    let (_, token, _) = kubectl(&env, &["create", "token", "reader"], None).await?;
    let bearer = vec![
        "-H".to_string(),
        format!("Authorization: Bearer {}", token.trim()),
    ];
    assert_eq!(
        curl(bearer.clone()).await?,
        "403",
        "a service account without nodes/proxy must be forbidden"
    );
    let (code, _, err) = kubectl(
        &env,
        &[
            "create",
            "clusterrole",
            &format!("{ns}-nodes-proxy"),
            "--verb=get,create",
            "--resource=nodes/proxy",
        ],
        None,
    )
    .await?;
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = kubectl(
        &env,
        &[
            "create",
            "clusterrolebinding",
            &format!("{ns}-nodes-proxy"),
            &format!("--clusterrole={ns}-nodes-proxy"),
            &format!("--serviceaccount={ns}:reader"),
        ],
        None,
    )
    .await?;
    assert_eq!(code, 0, "{err}");
    eventually(
        "the bearer token to be allowed",
        Duration::from_secs(60),
        || {
            let curl = &curl;
            let bearer = bearer.clone();
            async move { (curl(bearer).await.ok()? == "200").then_some(()) }
        },
    )
    .await?;
    Ok(())
}

/// Drives `kubectl exec -it` from a real pseudo-terminal (Python's `pty`), resizes the terminal
/// and checks the provider saw the new size (the mock's `tty-size --watch` prints each one).
const PTY_DRIVER: &str = r#"
import fcntl, os, pty, select, signal, struct, sys, termios, time
kubectl, kubeconfig, ns, pod = sys.argv[1:5]
pid, fd = pty.fork()
if pid == 0:
    os.environ["KUBECONFIG"] = kubeconfig
    os.execv(kubectl, [kubectl, "-n", ns, "exec", "-it", pod, "--", "tty-size", "--watch"])
fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 90, 0, 0))
out, resized, deadline = b"", False, time.time() + 20
while time.time() < deadline:
    if not resized and time.time() > deadline - 17:
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 120, 0, 0))
        os.kill(pid, signal.SIGWINCH)
        resized = True
    r, _, _ = select.select([fd], [], [], 0.5)
    if r:
        try:
            chunk = os.read(fd, 1024)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
        if b"50 120" in out:
            break
os.kill(pid, signal.SIGKILL)
sys.stdout.write(out.decode(errors="replace"))
sys.exit(0 if b"50 120" in out else 1)
"#;

#[tokio::test(flavor = "multi_thread")]
async fn kubectl_exec_it_resize_reaches_the_provider() -> TestResult {
    let env = setup("exec-it").await?;
    running_pod(&env, "term", json!({})).await?;
    let kubectl = env.cluster.kubectl_path().display().to_string();
    let kubeconfig = env.cluster.kubeconfig().display().to_string();
    let out = tokio::time::timeout(
        Duration::from_secs(40),
        tokio::process::Command::new("python3")
            .args([
                "-c",
                PTY_DRIVER,
                &kubectl,
                &kubeconfig,
                env.ns.name(),
                "term",
            ])
            .output(),
    )
    .await??;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("50 120"),
        "resize not seen by the provider: {text:?}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}
