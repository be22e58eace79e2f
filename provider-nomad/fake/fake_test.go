// fake_test.go proves the fake against the official client: it starts the
// fake in-process on a loopback port and drives it only through
// github.com/hashicorp/nomad/api (plus one raw HTTP read for the event
// stream heartbeat, which the client hides).
package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/nomad/api"
)

type fake struct {
	srv    *Server
	addr   string
	client *api.Client
}

func startFake(t *testing.T, mut func(*Config)) *fake {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Quiet = true
	cfg.DataDir = t.TempDir()
	if mut != nil {
		mut(&cfg)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := NewServer(cfg, ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: srv}
	go func() { _ = hs.Serve(ln) }()
	t.Cleanup(func() {
		srv.Shutdown()
		_ = hs.Close()
		time.Sleep(50 * time.Millisecond)
	})
	c, err := api.NewClient(&api.Config{Address: "http://" + ln.Addr().String(), SecretID: cfg.Token})
	if err != nil {
		t.Fatal(err)
	}
	return &fake{srv: srv, addr: ln.Addr().String(), client: c}
}

func waitFor(t *testing.T, d time.Duration, what string, fn func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if fn() {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

func rawExecTask(name, script string) *api.Task {
	return &api.Task{Name: name, Driver: "raw_exec", Config: map[string]any{"command": "sh", "args": []string{"-c", script}},
		Resources: &api.Resources{CPU: ptr(100), MemoryMB: ptr(64)}, KillTimeout: ptr(2 * time.Second)}
}

func fastRestart(attempts int) *api.RestartPolicy {
	return &api.RestartPolicy{Attempts: ptr(attempts), Interval: ptr(time.Hour), Delay: ptr(100 * time.Millisecond), Mode: ptr("fail")}
}

func (f *fake) onlyAlloc(t *testing.T, jobID string, status string) *api.Allocation {
	t.Helper()
	var id string
	waitFor(t, 15*time.Second, jobID+" alloc "+status, func() bool {
		allocs, _, err := f.client.Jobs().Allocations(jobID, false, nil)
		if err != nil || len(allocs) == 0 {
			return false
		}
		id = allocs[0].ID
		return allocs[0].ClientStatus == status
	})
	a, _, err := f.client.Allocations().Info(id, nil)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func eventsOf(ts *api.TaskState, typ string) []*api.TaskEvent {
	var out []*api.TaskEvent
	for _, e := range ts.Events {
		if e.Type == typ {
			out = append(out, e)
		}
	}
	return out
}

func readLogs(t *testing.T, f *fake, a *api.Allocation, task, typ string) string {
	t.Helper()
	frames, errs := f.client.AllocFS().Logs(a, false, task, typ, api.OriginStart, 0, nil, nil)
	var buf bytes.Buffer
	for {
		select {
		case fr, ok := <-frames:
			if !ok {
				return buf.String()
			}
			buf.Write(fr.Data)
		case err := <-errs:
			t.Fatalf("logs: %v", err)
		case <-time.After(5 * time.Second):
			t.Fatal("logs timed out")
		}
	}
}

func TestBatchRestartPolicyFail(t *testing.T) {
	f := startFake(t, nil)
	job := api.NewBatchJob("batch1", "batch1", "global", 50)
	tg := api.NewTaskGroup("g", 1)
	tg.RestartPolicy = fastRestart(1)
	tg.ReschedulePolicy = &api.ReschedulePolicy{Attempts: ptr(0), Unlimited: ptr(false)}
	tg.Tasks = []*api.Task{rawExecTask("t", "echo hello; echo oops >&2; exit 3")}
	job.TaskGroups = []*api.TaskGroup{tg}
	resp, _, err := f.client.Jobs().Register(job, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.EvalID == "" || resp.JobModifyIndex == 0 {
		t.Fatalf("bad register response %+v", resp)
	}
	a := f.onlyAlloc(t, "batch1", api.AllocClientStatusFailed)
	ts := a.TaskStates["t"]
	if ts == nil || ts.State != "dead" || !ts.Failed || ts.Restarts != 1 {
		t.Fatalf("task state %+v", ts)
	}
	term := eventsOf(ts, api.TaskTerminated)
	if len(term) != 2 || term[0].ExitCode != 3 || term[1].ExitCode != 3 {
		t.Fatalf("want two Terminated exit 3 events, got %+v", term)
	}
	for _, typ := range []string{api.TaskReceived, api.TaskSetup, api.TaskStarted, api.TaskRestarting, api.TaskNotRestarting} {
		if len(eventsOf(ts, typ)) == 0 {
			t.Errorf("missing %q event", typ)
		}
	}
	if nr := eventsOf(ts, api.TaskNotRestarting); len(nr) == 1 && !strings.Contains(nr[0].RestartReason, "Exceeded allowed attempts 1") {
		t.Errorf("Not Restarting reason %q", nr[0].RestartReason)
	}
	if a.Job == nil || *a.Job.ID != "batch1" {
		t.Errorf("alloc has no embedded job")
	}
	if got := readLogs(t, f, a, "t", "stdout"); got != "hello\nhello\n" {
		t.Errorf("stdout logs %q", got)
	}
	if got := readLogs(t, f, a, "t", "stderr"); got != "oops\noops\n" {
		t.Errorf("stderr logs %q", got)
	}
	waitFor(t, 5*time.Second, "job dead", func() bool {
		j, _, err := f.client.Jobs().Info("batch1", nil)
		return err == nil && *j.Status == "dead"
	})
	evals, _, err := f.client.Jobs().Evaluations("batch1", nil)
	if err != nil || len(evals) != 1 || evals[0].Status != "complete" {
		t.Fatalf("evals %v %+v", err, evals)
	}
}

func serviceJob(id string, task *api.Task) *api.Job {
	job := api.NewServiceJob(id, id, "global", 50)
	tg := api.NewTaskGroup("web", 1)
	tg.RestartPolicy = fastRestart(2)
	tg.Networks = []*api.NetworkResource{{Mode: "host", DynamicPorts: []api.Port{{Label: "http", To: 8080}}, ReservedPorts: []api.Port{{Label: "admin", Value: 19999}}}}
	tg.Tasks = []*api.Task{task}
	job.TaskGroups = []*api.TaskGroup{tg}
	return job
}

func TestServiceJobLogsExecStats(t *testing.T) {
	f := startFake(t, nil)
	task := rawExecTask("srv", `echo "started port=$NOMAD_PORT_http host=$NOMAD_HOST_PORT_http"; echo to-stderr >&2; exec sleep 300`)
	task.Env = map[string]string{"GREETING": "hi-${NOMAD_TASK_NAME}"}
	task.Templates = []*api.Template{
		{EmbeddedTmpl: ptr("raw {{ .NotATemplate }} text\n"), DestPath: ptr("local/verbatim.txt"), LeftDelim: ptr("[[["), RightDelim: ptr("]]]"), Perms: ptr("0600")},
		{EmbeddedTmpl: ptr("FROM_TMPL=yes\n"), DestPath: ptr("secrets/env.env"), Envvars: ptr(true)},
	}
	if _, _, err := f.client.Jobs().Register(serviceJob("svc", task), nil); err != nil {
		t.Fatal(err)
	}
	a := f.onlyAlloc(t, "svc", api.AllocClientStatusRunning)
	nets := a.AllocatedResources.Shared.Networks
	if len(nets) != 1 || nets[0].IP != "127.0.0.1" {
		t.Fatalf("networks %+v", nets)
	}
	var dyn, res api.PortMapping
	for _, p := range a.AllocatedResources.Shared.Ports {
		switch p.Label {
		case "http":
			dyn = p
		case "admin":
			res = p
		}
	}
	if dyn.Value < 20000 || dyn.Value > 32000 || dyn.To != 8080 || res.Value != 19999 {
		t.Fatalf("ports %+v", a.AllocatedResources.Shared.Ports)
	}
	if tr := a.AllocatedResources.Tasks["srv"]; tr == nil || tr.Cpu.CpuShares != 100 || tr.Memory.MemoryMB != 64 {
		t.Fatalf("task resources %+v", tr)
	}

	// Logs, framed (the client's decoder) and plain.
	var framed string
	waitFor(t, 5*time.Second, "framed logs", func() bool {
		framed = readLogs(t, f, a, "srv", "stdout")
		return strings.Contains(framed, "started")
	})
	if !strings.Contains(framed, "port=8080") {
		t.Errorf("framed logs %q lack NOMAD_PORT_http", framed)
	}
	body, err := f.client.Raw().Response("/v1/client/fs/logs/"+a.ID, &api.QueryOptions{Params: map[string]string{
		"task": "srv", "type": "stderr", "plain": "true", "follow": "false", "origin": "start", "offset": "0"}})
	if err != nil {
		t.Fatal(err)
	}
	plain, _ := io.ReadAll(body)
	body.Close()
	if string(plain) != "to-stderr\n" {
		t.Errorf("plain stderr %q", plain)
	}
	body, err = f.client.Raw().Response("/v1/client/fs/logs/"+a.ID, &api.QueryOptions{Params: map[string]string{
		"task": "srv", "type": "stderr", "plain": "true", "origin": "end", "offset": "7"}})
	if err != nil {
		t.Fatal(err)
	}
	tail, _ := io.ReadAll(body)
	body.Close()
	if string(tail) != "stderr\n" {
		t.Errorf("origin=end offset=7: %q", tail)
	}
	if _, err := f.client.Raw().Response("/v1/client/fs/logs/"+a.ID, &api.QueryOptions{Params: map[string]string{
		"task": "srv", "type": "stdout", "origin": "middle"}}); err == nil || !strings.Contains(err.Error(), "400") {
		t.Errorf("bad origin: %v", err)
	}

	// Exec.
	exec := func(tty bool, cmd ...string) (int, string, string) {
		var so, se bytes.Buffer
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		code, err := f.client.Allocations().Exec(ctx, a, "srv", tty, cmd, strings.NewReader(""), &so, &se, nil, nil)
		if err != nil {
			t.Fatalf("exec %v: %v", cmd, err)
		}
		return code, so.String(), se.String()
	}
	if code, so, _ := exec(false, "echo", "hi"); code != 0 || so != "hi\n" {
		t.Errorf("echo hi: %d %q", code, so)
	}
	if code, so, se := exec(false, "sh", "-c", "echo out; echo err >&2; exit 7"); code != 7 || so != "out\n" || se != "err\n" {
		t.Errorf("exit 7: %d %q %q", code, so, se)
	}
	if code, so, _ := exec(true, "sh", "-c", "echo tty-ok"); code != 0 || !strings.Contains(so, "tty-ok") {
		t.Errorf("tty: %d %q", code, so)
	}
	if _, so, _ := exec(false, "sh", "-c", `cat local/verbatim.txt; echo "$GREETING $FROM_TMPL"; stat -c %a local/verbatim.txt; pwd`); !strings.Contains(so, "raw {{ .NotATemplate }} text\nhi-srv yes\n600\n") || !strings.Contains(so, "/alloc/"+a.ID+"/srv") {
		t.Errorf("task env/templates: %q", so)
	}

	// Stats.
	stats, err := f.client.Allocations().Stats(a, nil)
	if err != nil {
		t.Fatal(err)
	}
	if u := stats.Tasks["srv"]; u == nil || u.ResourceUsage.MemoryStats.RSS == 0 || stats.Timestamp == 0 {
		t.Fatalf("stats %+v", stats)
	}

	// Restart the task.
	if err := f.client.Allocations().Restart(a, "srv", nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "restarted task running", func() bool {
		a2, _, err := f.client.Allocations().Info(a.ID, nil)
		return err == nil && a2.TaskStates["srv"].Restarts == 1 && a2.TaskStates["srv"].State == "running"
	})

	// Re-registering the same job is a no-op; a changed job replaces the alloc.
	job := serviceJob("svc", task)
	if _, _, err := f.client.Jobs().Register(job, nil); err != nil {
		t.Fatal(err)
	}
	allocs, _, _ := f.client.Jobs().Allocations("svc", false, nil)
	if len(allocs) != 1 {
		t.Fatalf("identical re-register created allocs: %d", len(allocs))
	}
	// Deregister without purge: the job stays, stopped; the task is killed.
	if _, _, err := f.client.Jobs().Deregister("svc", false, nil); err != nil {
		t.Fatal(err)
	}
	a = f.onlyAlloc(t, "svc", api.AllocClientStatusComplete)
	ts := a.TaskStates["srv"]
	if a.DesiredStatus != "stop" || len(eventsOf(ts, api.TaskKilling)) != 1 || len(eventsOf(ts, api.TaskKilled)) != 1 {
		t.Fatalf("stop: desired %s events %+v", a.DesiredStatus, ts.Events)
	}
	if term := eventsOf(ts, api.TaskTerminated); len(term) == 0 || term[len(term)-1].Signal != 2 {
		t.Errorf("want last Terminated by SIGINT: %+v", term)
	}
	j, _, err := f.client.Jobs().Info("svc", nil)
	if err != nil || !*j.Stop || *j.Status != "dead" {
		t.Fatalf("stopped job: %v %+v", err, j)
	}
	// Exec into a dead task fails like Nomad.
	_, err = f.client.Allocations().Exec(context.Background(), a, "srv", false, []string{"true"}, strings.NewReader(""), io.Discard, io.Discard, nil, nil)
	if err == nil || !strings.Contains(err.Error(), "not running") {
		t.Errorf("exec into dead task: %v", err)
	}
}

func TestJobUpdateReplacesAlloc(t *testing.T) {
	f := startFake(t, nil)
	job := serviceJob("upd", rawExecTask("srv", "exec sleep 300"))
	if _, _, err := f.client.Jobs().Register(job, nil); err != nil {
		t.Fatal(err)
	}
	first := f.onlyAlloc(t, "upd", api.AllocClientStatusRunning)
	job = serviceJob("upd", rawExecTask("srv", "exec sleep 301"))
	if _, _, err := f.client.Jobs().Register(job, nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "replacement", func() bool {
		allocs, _, _ := f.client.Jobs().Allocations("upd", false, nil)
		if len(allocs) != 2 {
			return false
		}
		var old, nw *api.AllocationListStub
		for _, a := range allocs {
			if a.ID == first.ID {
				old = a
			} else {
				nw = a
			}
		}
		return old != nil && nw != nil && old.DesiredStatus == "stop" && old.ClientStatus == "complete" && nw.ClientStatus == "running" && nw.JobVersion == 1
	})
}

func TestLifecycleAndSimulatedDriver(t *testing.T) {
	f := startFake(t, func(c *Config) { c.StartDelay = 100 * time.Millisecond })
	job := api.NewBatchJob("life", "life", "global", 50)
	tg := api.NewTaskGroup("g", 1)
	tg.RestartPolicy = fastRestart(0)
	pre := rawExecTask("init", `sleep 0.2; echo ready > "$NOMAD_ALLOC_DIR/data/ready"`)
	pre.Lifecycle = &api.TaskLifecycle{Hook: "prestart"}
	side := &api.Task{Name: "side", Driver: "docker", Config: map[string]any{"image": "busybox:1"}, Lifecycle: &api.TaskLifecycle{Hook: "prestart", Sidecar: true}}
	main := rawExecTask("main", `cat "$NOMAD_ALLOC_DIR/data/ready"`)
	sim := &api.Task{Name: "sim", Driver: "podman", Config: map[string]any{"image": "alpine", "run_for": "300ms", "exit_code": 0}}
	tg.Tasks = []*api.Task{main, side, pre, sim}
	job.TaskGroups = []*api.TaskGroup{tg}
	if _, _, err := f.client.Jobs().Register(job, nil); err != nil {
		t.Fatal(err)
	}
	a := f.onlyAlloc(t, "life", api.AllocClientStatusComplete)
	for _, name := range []string{"init", "side", "main", "sim"} {
		if ts := a.TaskStates[name]; ts.State != "dead" || ts.Failed {
			t.Errorf("%s: %+v", name, ts)
		}
	}
	if got := readLogs(t, f, a, "main", "stdout"); got != "ready\n" {
		t.Errorf("main ran before prestart finished: %q", got)
	}
	if got := readLogs(t, f, a, "side", "stdout"); !strings.Contains(got, "simulated docker task side started (image busybox:1)") {
		t.Errorf("sidecar log %q", got)
	}
	if len(eventsOf(a.TaskStates["side"], api.TaskKilled)) != 1 {
		t.Errorf("sidecar not killed: %+v", a.TaskStates["side"].Events)
	}
	if !a.TaskStates["main"].StartedAt.After(a.TaskStates["init"].FinishedAt) {
		t.Errorf("main started before init finished")
	}
}

func TestEventStreamAndBlockingQuery(t *testing.T) {
	f := startFake(t, func(c *Config) { c.Heartbeat = 200 * time.Millisecond })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := f.client.EventStream().Stream(ctx, map[api.Topic][]string{api.TopicAllocation: {"*"}, api.TopicJob: {"evjob"}}, 0, nil)
	if err != nil {
		t.Fatal(err)
	}

	// Blocking query on the job's allocations.
	_, meta, err := f.client.Jobs().Allocations("evjob", false, nil)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, meta2, err := f.client.Jobs().Allocations("evjob", false, &api.QueryOptions{WaitIndex: meta.LastIndex, WaitTime: 300 * time.Millisecond})
	if err != nil || time.Since(start) < 250*time.Millisecond || meta2.LastIndex != meta.LastIndex {
		t.Fatalf("blocking query did not wait: %v %v", err, time.Since(start))
	}
	var wg sync.WaitGroup
	wg.Add(1)
	var blocked []*api.AllocationListStub
	var blockedMeta *api.QueryMeta
	go func() {
		defer wg.Done()
		blocked, blockedMeta, _ = f.client.Jobs().Allocations("evjob", false, &api.QueryOptions{WaitIndex: meta.LastIndex, WaitTime: 20 * time.Second})
	}()
	time.Sleep(200 * time.Millisecond)
	job := api.NewBatchJob("evjob", "evjob", "global", 50)
	tg := api.NewTaskGroup("g", 1)
	tg.Tasks = []*api.Task{{Name: "t", Driver: "mock_driver", Config: map[string]any{"run_for": "100ms"}}}
	job.TaskGroups = []*api.TaskGroup{tg}
	if _, _, err := f.client.Jobs().Register(job, nil); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if blockedMeta == nil || blockedMeta.LastIndex <= meta.LastIndex || len(blocked) != 1 {
		t.Fatalf("blocking query result %+v %+v", blockedMeta, blocked)
	}

	sawAlloc, sawJob, sawComplete := false, false, false
	timeout := time.After(10 * time.Second)
	for !(sawAlloc && sawJob && sawComplete) {
		select {
		case evs := <-ch:
			if evs.Err != nil {
				t.Fatal(evs.Err)
			}
			for _, e := range evs.Events {
				switch e.Topic {
				case api.TopicAllocation:
					a, err := e.Allocation()
					if err != nil || a == nil || a.JobID != "evjob" {
						t.Fatalf("alloc event %v %+v", err, a)
					}
					sawAlloc = true
					if a.ClientStatus == "complete" {
						sawComplete = true
					}
				case api.TopicJob:
					j, err := e.Job()
					if err != nil || *j.ID != "evjob" {
						t.Fatalf("job event %v", err)
					}
					sawJob = true
				default:
					t.Fatalf("unexpected topic %s", e.Topic)
				}
			}
		case <-timeout:
			t.Fatalf("events: alloc=%v job=%v complete=%v", sawAlloc, sawJob, sawComplete)
		}
	}

	// The client hides heartbeats; read one with plain HTTP.
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+f.addr+"/v1/event/stream?topic=Node", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || line != "{}\n" || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("heartbeat %q %v", line, err)
	}
}

func TestPlacementFailureBlockedEvalAndPurge(t *testing.T) {
	f := startFake(t, func(c *Config) { c.NodeMemoryMB = 1000; c.NodeCPUMHz = 2000 })
	mk := func(id string, mem, cpu int) *api.Job {
		job := api.NewServiceJob(id, id, "global", 50)
		tg := api.NewTaskGroup("g", 1)
		tg.Tasks = []*api.Task{{Name: "t", Driver: "docker", Config: map[string]any{"image": "nginx"},
			Resources: &api.Resources{MemoryMB: ptr(mem), CPU: ptr(cpu)}}}
		job.TaskGroups = []*api.TaskGroup{tg}
		return job
	}
	if _, _, err := f.client.Jobs().Register(mk("first", 600, 100), nil); err != nil {
		t.Fatal(err)
	}
	f.onlyAlloc(t, "first", api.AllocClientStatusRunning)
	resp, _, err := f.client.Jobs().Register(mk("second", 600, 100), nil)
	if err != nil {
		t.Fatal(err)
	}
	ev, _, err := f.client.Evaluations().Info(resp.EvalID, nil)
	if err != nil {
		t.Fatal(err)
	}
	m := ev.FailedTGAllocs["g"]
	if ev.Status != "complete" || m == nil || m.DimensionExhausted["memory"] != 1 || m.NodesEvaluated != 1 || m.NodesExhausted != 1 || ev.BlockedEval == "" {
		t.Fatalf("eval %+v metric %+v", ev, m)
	}
	blocked, _, err := f.client.Evaluations().Info(ev.BlockedEval, nil)
	if err != nil || blocked.Status != "blocked" {
		t.Fatalf("blocked eval %v %+v", err, blocked)
	}
	if allocs, _, _ := f.client.Jobs().Allocations("second", false, nil); len(allocs) != 0 {
		t.Fatalf("allocs placed: %d", len(allocs))
	}
	if j, _, _ := f.client.Jobs().Info("second", nil); *j.Status != "pending" {
		t.Fatalf("job status %s", *j.Status)
	}
	// CPU too.
	resp, _, _ = f.client.Jobs().Register(mk("cpuhog", 10, 5000), nil)
	if ev, _, _ := f.client.Evaluations().Info(resp.EvalID, nil); ev.FailedTGAllocs["g"].DimensionExhausted["cpu"] != 1 {
		t.Fatalf("cpu metric %+v", ev.FailedTGAllocs["g"])
	}
	if _, _, err := f.client.Jobs().Deregister("cpuhog", true, nil); err != nil {
		t.Fatal(err)
	}

	// Freeing capacity unblocks the blocked eval.
	if _, _, err := f.client.Jobs().Deregister("first", true, nil); err != nil {
		t.Fatal(err)
	}
	f.onlyAlloc(t, "second", api.AllocClientStatusRunning)
	if b, _, _ := f.client.Evaluations().Info(blocked.ID, nil); b.Status != "complete" {
		t.Fatalf("blocked eval after unblock: %s", b.Status)
	}
	_, _, err = f.client.Jobs().Info("first", nil)
	if err == nil || !strings.Contains(err.Error(), "404") || !strings.Contains(err.Error(), "job not found") {
		t.Fatalf("purged job: %v", err)
	}
	waitFor(t, 10*time.Second, "purged allocs collected", func() bool {
		allocs, _, err := f.client.Jobs().Allocations("first", true, nil)
		return err == nil && len(allocs) == 0
	})
}

func TestNodesAgentAndToken(t *testing.T) {
	f := startFake(t, func(c *Config) { c.Token = "s3cret"; c.Nodes = 2 })
	nodes, _, err := f.client.Nodes().List(&api.QueryOptions{Params: map[string]string{"resources": "true"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(nodes) != 2 || nodes[0].Status != "ready" || nodes[0].SchedulingEligibility != "eligible" || nodes[0].NodeResources == nil ||
		nodes[0].NodeResources.Cpu.CpuShares != 8000 || !nodes[0].Drivers["raw_exec"].Healthy || nodes[0].Datacenter != "dc1" || nodes[0].NodePool != "default" {
		t.Fatalf("nodes %+v", nodes[0])
	}
	n, _, err := f.client.Nodes().Info(nodes[0].ID, nil)
	if err != nil || n.NodeResources.Memory.MemoryMB != 16384 || n.NodeResources.Cpu.TotalCpuCores != 8 || n.ReservedResources == nil || n.HTTPAddr != f.addr {
		t.Fatalf("node %v %+v", err, n)
	}
	self, err := f.client.Agent().Self()
	if err != nil || self.Config["Region"] != "global" || self.Member.Tags["dc"] != "dc1" {
		t.Fatalf("agent self %v %+v", err, self)
	}
	leader, err := f.client.Status().Leader()
	if err != nil || leader != "127.0.0.1:4647" {
		t.Fatalf("leader %q %v", leader, err)
	}
	anon, _ := api.NewClient(&api.Config{Address: "http://" + f.addr})
	_, _, err = anon.Jobs().List(nil)
	if err == nil || !strings.Contains(err.Error(), "403") || !strings.Contains(err.Error(), "Permission denied") {
		t.Fatalf("no token: %v", err)
	}
	if _, _, err := f.client.Jobs().List(nil); err != nil {
		t.Fatalf("with token: %v", err)
	}
}

func TestDriverFailureAndDelayMode(t *testing.T) {
	f := startFake(t, nil)
	job := api.NewBatchJob("nocmd", "nocmd", "global", 50)
	tg := api.NewTaskGroup("g", 1)
	tg.RestartPolicy = fastRestart(3)
	tg.Tasks = []*api.Task{{Name: "t", Driver: "raw_exec", Config: map[string]any{"command": "definitely-not-a-command-xyz"}}}
	job.TaskGroups = []*api.TaskGroup{tg}
	if _, _, err := f.client.Jobs().Register(job, nil); err != nil {
		t.Fatal(err)
	}
	a := f.onlyAlloc(t, "nocmd", api.AllocClientStatusFailed)
	df := eventsOf(a.TaskStates["t"], api.TaskDriverFailure)
	if len(df) != 1 || !strings.Contains(df[0].DisplayMessage, "executable file not found") {
		t.Fatalf("driver failure events %+v", a.TaskStates["t"].Events)
	}
	if nr := eventsOf(a.TaskStates["t"], api.TaskNotRestarting); len(nr) != 1 || nr[0].RestartReason != "Error was unrecoverable" {
		t.Fatalf("not restarting %+v", nr)
	}

	// Restart tracker in delay mode waits for the next interval.
	rt := &restartTracker{policy: api.RestartPolicy{Attempts: ptr(1), Interval: ptr(time.Minute), Delay: ptr(time.Second), Mode: ptr("delay")}}
	rt.rnd = newRand()
	if d := rt.next(&exitResult{code: 1}, nil); d.state != api.TaskRestarting || d.reason != reasonWithinPolicy {
		t.Fatalf("first %+v", d)
	}
	if d := rt.next(&exitResult{code: 1}, nil); d.state != api.TaskRestarting || d.reason != reasonDelay || d.delay < 50*time.Second {
		t.Fatalf("second %+v", d)
	}
}

func TestAllocStopReplaces(t *testing.T) {
	f := startFake(t, nil)
	job := api.NewServiceJob("stopme", "stopme", "global", 50)
	tg := api.NewTaskGroup("g", 1)
	tg.Tasks = []*api.Task{{Name: "t", Driver: "docker", Config: map[string]any{"image": "nginx"}}}
	job.TaskGroups = []*api.TaskGroup{tg}
	if _, _, err := f.client.Jobs().Register(job, nil); err != nil {
		t.Fatal(err)
	}
	a := f.onlyAlloc(t, "stopme", api.AllocClientStatusRunning)
	resp, err := f.client.Allocations().Stop(a, nil)
	if err != nil || resp.EvalID == "" {
		t.Fatalf("stop %v %+v", err, resp)
	}
	waitFor(t, 10*time.Second, "replacement alloc", func() bool {
		allocs, _, _ := f.client.Jobs().Allocations("stopme", false, nil)
		for _, x := range allocs {
			if x.ID != a.ID && x.ClientStatus == "running" {
				full, _, err := f.client.Allocations().Info(x.ID, nil)
				return err == nil && full.PreviousAllocation == a.ID && full.Name == a.Name
			}
		}
		return false
	})
	old, _, _ := f.client.Allocations().Info(a.ID, nil)
	if old.DesiredStatus != "stop" || old.NextAllocation == "" {
		t.Fatalf("old alloc %s next=%q", old.DesiredStatus, old.NextAllocation)
	}
}
