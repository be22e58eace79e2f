// runner.go owns the client side of the fake: one allocation runner per
// placed allocation and one task runner per task. It mirrors the Nomad
// client's alloc runner / task runner: task lifecycle ordering (prestart,
// sidecars, poststart, poststop), the restart policy tracker, kills with
// KillSignal then SIGKILL after KillTimeout, and the task events and states
// it reports back to the state store.
package main

import (
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/nomad/api"
)

// Client is the simulated Nomad client agent of all nodes.
type Client struct {
	cfg     Config
	store   *Store
	dataDir string

	mu      sync.Mutex
	runners map[string]*allocRunner
}

// allocInfo is the runner's immutable copy of what it needs of the allocation.
type allocInfo struct {
	id, name, ns, nodeID string
	dir                  string
	job                  *api.Job
	tg                   *api.TaskGroup
	res                  *api.AllocatedResources
	node                 *api.Node
}

type allocRunner struct {
	c      *Client
	info   *allocInfo
	tasks  []*taskRunner
	byName map[string]*taskRunner

	stopOnce sync.Once
	stopCh   chan struct{}
	notify   chan struct{}
	done     chan struct{}
}

type killReq struct {
	pre    *api.TaskEvent // event emitted before Killing (sibling failed...)
	reason string
}

type taskRunner struct {
	ar      *allocRunner
	task    *api.Task
	hook    string
	sidecar bool
	dir     string

	killOnce  sync.Once
	killCh    chan struct{}
	kill      killReq
	restartCh chan string
	done      chan struct{}

	mu      sync.Mutex
	started bool // run() was called
	state   string
	failed  bool
	handle  driverHandle
	env     []string
	envMap  map[string]string
	startAt time.Time
	// stats bookkeeping
	lastCPU  float64
	lastTime time.Time
}

func newClient(cfg Config, store *Store, dataDir string) *Client {
	c := &Client{cfg: cfg, store: store, dataDir: dataDir, runners: map[string]*allocRunner{}}
	store.startAlloc = c.startAlloc
	store.stopAlloc = c.stopAlloc
	store.gcAlloc = c.gcAlloc
	return c
}

func (c *Client) runner(id string) *allocRunner {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.runners[id]
}

func (c *Client) startAlloc(a *api.Allocation) {
	c.store.mu.Lock()
	info := &allocInfo{id: a.ID, name: a.Name, ns: a.Namespace, nodeID: a.NodeID,
		dir: filepath.Join(c.dataDir, "alloc", a.ID),
		job: cloneJob(a.Job), node: c.store.node(a.NodeID)}
	resCopy := *a.AllocatedResources
	info.res = &resCopy
	stopped := a.DesiredStatus != api.AllocDesiredStatusRun
	c.store.mu.Unlock()
	for _, tg := range info.job.TaskGroups {
		if *tg.Name == a.TaskGroup {
			info.tg = tg
		}
	}
	ar := &allocRunner{c: c, info: info, byName: map[string]*taskRunner{}, stopCh: make(chan struct{}),
		notify: make(chan struct{}, 1), done: make(chan struct{})}
	for _, t := range info.tg.Tasks {
		tr := &taskRunner{ar: ar, task: t, killCh: make(chan struct{}), restartCh: make(chan string, 1),
			done: make(chan struct{}), state: "pending"}
		if t.Lifecycle != nil {
			tr.hook = t.Lifecycle.Hook
			tr.sidecar = t.Lifecycle.Sidecar
		}
		ar.tasks = append(ar.tasks, tr)
		ar.byName[t.Name] = tr
	}
	c.mu.Lock()
	c.runners[a.ID] = ar
	c.mu.Unlock()
	if stopped {
		close(ar.stopCh)
	}
	go ar.run()
}

func (c *Client) stopAlloc(id string) {
	if ar := c.runner(id); ar != nil {
		ar.stopOnce.Do(func() { close(ar.stopCh) })
	}
}

func (c *Client) gcAlloc(id string) {
	c.mu.Lock()
	ar := c.runners[id]
	delete(c.runners, id)
	c.mu.Unlock()
	if ar != nil {
		go func() {
			<-ar.done
			_ = os.RemoveAll(ar.info.dir)
		}()
	}
}

// Shutdown kills every task immediately (used when the fake exits).
func (c *Client) Shutdown() {
	c.mu.Lock()
	var all []*allocRunner
	for _, ar := range c.runners {
		all = append(all, ar)
	}
	c.mu.Unlock()
	for _, ar := range all {
		for _, tr := range ar.tasks {
			tr.mu.Lock()
			h := tr.handle
			tr.mu.Unlock()
			if h != nil {
				_ = h.signal(syscall.SIGKILL)
			}
		}
	}
}

// ---- events ----------------------------------------------------------------

func newEvent(typ, display string) *api.TaskEvent {
	return &api.TaskEvent{Type: typ, Time: time.Now().UnixNano(), DisplayMessage: display, Details: map[string]string{}}
}

// update changes the task's state in the store.
func (tr *taskRunner) update(state string, events ...*api.TaskEvent) {
	tr.updateFn(state, nil, events...)
}

func (tr *taskRunner) updateFn(state string, fn func(ts *api.TaskState), events ...*api.TaskEvent) {
	tr.mu.Lock()
	if state != "" {
		tr.state = state
	}
	tr.mu.Unlock()
	tr.ar.c.store.clientUpdate(tr.ar.info.id, func(a *api.Allocation) {
		ts := a.TaskStates[tr.task.Name]
		if ts == nil {
			ts = &api.TaskState{State: "pending"}
			a.TaskStates[tr.task.Name] = ts
		}
		if state != "" {
			ts.State = state
		}
		ts.Events = append(ts.Events, events...)
		// Nomad keeps the last 10 events per task.
		if len(ts.Events) > 10 {
			ts.Events = ts.Events[len(ts.Events)-10:]
		}
		if fn != nil {
			fn(ts)
		}
		if state == "dead" && ts.FinishedAt.IsZero() {
			ts.FinishedAt = time.Now().UTC()
		}
	})
	select {
	case tr.ar.notify <- struct{}{}:
	default:
	}
}

func (tr *taskRunner) snapshot() (state string, failed bool) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.state, tr.failed
}

func (tr *taskRunner) requestKill(k killReq) {
	tr.killOnce.Do(func() {
		tr.mu.Lock()
		tr.kill = k
		tr.mu.Unlock()
		close(tr.killCh)
	})
}

// ---- alloc runner ------------------------------------------------------------

func (ar *allocRunner) stopping() bool {
	select {
	case <-ar.stopCh:
		return true
	default:
		return false
	}
}

func (ar *allocRunner) run() {
	defer close(ar.done)
	dir, err := allocDirs(ar.c.dataDir, ar.info.id)
	recv := func() {
		ar.c.store.clientUpdate(ar.info.id, func(a *api.Allocation) {
			for _, tr := range ar.tasks {
				if a.TaskStates[tr.task.Name] == nil {
					a.TaskStates[tr.task.Name] = &api.TaskState{State: "pending",
						Events: []*api.TaskEvent{newEvent(api.TaskReceived, "Task received by client")}}
				}
			}
		})
	}
	recv()
	if err != nil {
		for _, tr := range ar.tasks {
			tr.mu.Lock()
			tr.failed = true
			tr.mu.Unlock()
			ev := newEvent(api.TaskSetupFailure, "failed to build task directory: "+err.Error())
			ev.SetupError = err.Error()
			ev.FailsTask = true
			tr.updateFn("dead", func(ts *api.TaskState) { ts.Failed = true }, ev)
			close(tr.done)
		}
		return
	}
	for _, tr := range ar.tasks {
		tr.dir = dir + "/" + tr.task.Name
	}

	var prestart, prestartBlocking, main, poststart, poststop []*taskRunner
	for _, tr := range ar.tasks {
		switch tr.hook {
		case "prestart":
			prestart = append(prestart, tr)
			if !tr.sidecar {
				prestartBlocking = append(prestartBlocking, tr)
			}
		case "poststart":
			poststart = append(poststart, tr)
		case "poststop":
			poststop = append(poststop, tr)
		default:
			main = append(main, tr)
		}
	}
	start := func(trs []*taskRunner) {
		for _, tr := range trs {
			tr.mu.Lock()
			tr.started = true
			tr.mu.Unlock()
			go tr.run()
		}
	}
	// failedTask returns the name of a failed task, if any.
	failedTask := func() string {
		for _, tr := range ar.tasks {
			if _, f := tr.snapshot(); f {
				return tr.task.Name
			}
		}
		return ""
	}
	allDead := func(trs []*taskRunner) bool {
		for _, tr := range trs {
			if st, _ := tr.snapshot(); st != "dead" {
				return false
			}
		}
		return true
	}
	wait := func() {
		select {
		case <-ar.notify:
		case <-ar.stopCh:
		case <-time.After(time.Second):
		}
	}

	var killRest killReq
	killSet := false
	setKill := func(k killReq) {
		if !killSet {
			killRest, killSet = k, true
		}
	}

	// Phase 1: prestart tasks (in parallel, ordering not guaranteed).
	if !ar.stopping() {
		start(prestart)
		for !allDead(prestartBlocking) {
			if ar.stopping() || failedTask() != "" {
				break
			}
			wait()
		}
	}
	// Phase 2: main tasks, then poststart once they run.
	if !ar.stopping() && failedTask() == "" {
		start(main)
		postStarted := false
		for {
			if ar.stopping() {
				break
			}
			if name := failedTask(); name != "" {
				ev := newEvent(api.TaskSiblingFailed, fmt.Sprintf("Task's sibling %q failed", name))
				ev.FailedSibling = name
				setKill(killReq{pre: ev, reason: "sibling failed"})
				break
			}
			if !postStarted {
				running := true
				for _, tr := range main {
					if st, _ := tr.snapshot(); st == "pending" {
						running = false
					}
				}
				if running {
					start(poststart)
					postStarted = true
				}
			}
			leaderDead := false
			for _, tr := range ar.tasks {
				if st, _ := tr.snapshot(); tr.task.Leader && st == "dead" {
					leaderDead = true
				}
			}
			if leaderDead {
				setKill(killReq{pre: newEvent(api.TaskLeaderDead, "Leader Task in Group dead"), reason: "leader dead"})
				break
			}
			if allDead(main) {
				setKill(killReq{pre: newEvent("Main Tasks Dead", "Main tasks in the group died"), reason: "main tasks dead"})
				break
			}
			wait()
		}
	} else if name := failedTask(); name != "" && !ar.stopping() {
		ev := newEvent(api.TaskSiblingFailed, fmt.Sprintf("Task's sibling %q failed", name))
		ev.FailedSibling = name
		setKill(killReq{pre: ev, reason: "sibling failed"})
	}

	// Phase 3: kill what still runs (except poststop tasks).
	var live []*taskRunner
	for _, tr := range ar.tasks {
		if tr.hook == "poststop" {
			continue
		}
		tr.mu.Lock()
		started := tr.started
		tr.mu.Unlock()
		if started {
			if st, _ := tr.snapshot(); st != "dead" {
				k := killRest
				if ar.stopping() && !killSet {
					k = killReq{reason: "alloc stopped"}
				}
				tr.requestKill(k)
				live = append(live, tr)
			}
		}
	}
	for _, tr := range live {
		<-tr.done
	}
	// Tasks that never started are dead without having run.
	for _, tr := range ar.tasks {
		tr.mu.Lock()
		started := tr.started
		tr.mu.Unlock()
		if !started && tr.hook != "poststop" {
			tr.update("dead")
			close(tr.done)
		}
	}
	// Phase 4: poststop tasks.
	if len(poststop) > 0 {
		start(poststop)
		for _, tr := range poststop {
			select {
			case <-tr.done:
			case <-ar.stopCh:
				// still let them finish; a stop during poststop kills them
				<-ar.stopCh
				tr.requestKill(killReq{reason: "alloc stopped"})
				<-tr.done
			}
		}
	}
}

// ---- restart tracker -----------------------------------------------------------

const (
	reasonWithinPolicy  = "Restart within policy"
	reasonNoRestarts    = "Policy allows no restarts"
	reasonUnrecoverable = "Error was unrecoverable"
	reasonDelay         = "Exceeded allowed attempts, applying a delay"
)

type restartTracker struct {
	policy    api.RestartPolicy
	batch     bool
	count     int
	startTime time.Time
	rnd       *rand.Rand
}

type decision struct {
	state  string // api.TaskTerminated, api.TaskNotRestarting, api.TaskRestarting
	delay  time.Duration
	reason string
}

func (r *restartTracker) jitter() time.Duration {
	d := deref(r.policy.Delay)
	if d <= 0 {
		return 0
	}
	return d + time.Duration(float64(r.rnd.Int63n(int64(d)))*0.25)
}

// next mirrors restarts.RestartTracker.GetState.
func (r *restartTracker) next(res *exitResult, startErr *errDriver) decision {
	if startErr != nil && !startErr.recoverable {
		return decision{state: api.TaskNotRestarting, reason: reasonUnrecoverable}
	}
	success := res != nil && res.code == 0 && res.err == nil
	if r.batch && success {
		return decision{state: api.TaskTerminated}
	}
	attempts := deref(r.policy.Attempts)
	if attempts == 0 {
		if success {
			return decision{state: api.TaskTerminated}
		}
		return decision{state: api.TaskNotRestarting, reason: reasonNoRestarts}
	}
	now := time.Now()
	if r.startTime.IsZero() {
		r.startTime = now
	}
	end := r.startTime.Add(deref(r.policy.Interval))
	if now.After(end) {
		r.count = 0
		r.startTime = now
		return decision{state: api.TaskRestarting, delay: r.jitter(), reason: reasonWithinPolicy}
	}
	r.count++
	if r.count <= attempts {
		return decision{state: api.TaskRestarting, delay: r.jitter(), reason: reasonWithinPolicy}
	}
	if deref(r.policy.Mode) == api.RestartPolicyModeFail {
		return decision{state: api.TaskNotRestarting, reason: fmt.Sprintf("Exceeded allowed attempts %d in interval %v and mode is %q",
			attempts, deref(r.policy.Interval), deref(r.policy.Mode))}
	}
	// Mode delay: wait for the next interval.
	r.count = 0
	r.startTime = end
	return decision{state: api.TaskRestarting, delay: end.Sub(now), reason: reasonDelay}
}

// ---- task runner ---------------------------------------------------------------

func (tr *taskRunner) policy() api.RestartPolicy {
	p := tr.task.RestartPolicy
	if p == nil {
		p = tr.ar.info.tg.RestartPolicy
	}
	if p == nil {
		return api.RestartPolicy{Attempts: ptr(0), Mode: ptr("fail")}
	}
	return *p
}

func (tr *taskRunner) killed() bool {
	select {
	case <-tr.killCh:
		return true
	default:
		return false
	}
}

func (tr *taskRunner) run() {
	defer close(tr.done)
	info := tr.ar.info
	t := tr.task
	if tr.killed() {
		tr.update("dead")
		return
	}
	tr.update("", func() *api.TaskEvent {
		e := newEvent(api.TaskSetup, "Building Task Directory")
		e.Message = "Building Task Directory"
		return e
	}())
	fail := func(events ...*api.TaskEvent) {
		tr.mu.Lock()
		tr.failed = true
		tr.mu.Unlock()
		tr.updateFn("dead", func(ts *api.TaskState) { ts.Failed = true }, events...)
	}
	if _, err := taskDirs(info.dir, t.Name); err != nil {
		ev := newEvent(api.TaskSetupFailure, err.Error())
		ev.SetupError, ev.FailsTask = err.Error(), true
		fail(ev)
		return
	}
	envMap := envFor(info, t, tr.dir, info.node)
	for k, v := range t.Env {
		envMap[k] = interpolate(v, envMap, info.node)
	}
	extra, err := writeTemplates(t, tr.dir, envMap, info.node)
	if err != nil {
		ev := newEvent("Task hook failed", fmt.Sprintf("prestart hook %q failed: %v", "template", err))
		ev.Message = ev.DisplayMessage
		nr := newEvent(api.TaskNotRestarting, reasonUnrecoverable)
		nr.RestartReason, nr.FailsTask = reasonUnrecoverable, true
		fail(ev, nr)
		return
	}
	for k, v := range extra {
		envMap[k] = v
	}
	env := envList(true, envMap)
	tr.mu.Lock()
	tr.env, tr.envMap = env, envMap
	tr.mu.Unlock()

	stdout := logPath(info.dir, t.Name, "stdout")
	stderr := logPath(info.dir, t.Name, "stderr")
	for _, p := range []string{stdout, stderr} {
		if f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o666); err == nil {
			_ = f.Close()
		}
	}
	rt := &restartTracker{policy: tr.policy(), batch: deref(info.job.Type) == api.JobTypeBatch || deref(info.job.Type) == api.JobTypeSysbatch,
		rnd: rand.New(rand.NewSource(time.Now().UnixNano()))}
	sig, sigName := killSignal(t)
	killTimeout := deref(t.KillTimeout)
	if killTimeout <= 0 {
		killTimeout = 5 * time.Second
	}

	for {
		// Simulated drivers stay pending for --start-delay.
		if isSimulated(t.Driver) && tr.ar.c.cfg.StartDelay > 0 {
			select {
			case <-time.After(tr.ar.c.cfg.StartDelay):
			case <-tr.killCh:
				tr.emitKilledNotRunning()
				return
			}
		}
		if tr.killed() {
			tr.emitKilledNotRunning()
			return
		}
		var h driverHandle
		if isSimulated(t.Driver) {
			h, err = startSimulated(t, stdout)
		} else {
			h, err = startRawExec(t, tr.dir, env, envMap, info.node, stdout, stderr)
		}
		var res *exitResult
		var startErr *errDriver
		if err != nil {
			de, _ := err.(*errDriver)
			if de == nil {
				de = &errDriver{msg: err.Error()}
			}
			startErr = de
			ev := newEvent(api.TaskDriverFailure, de.msg)
			ev.DriverError = de.msg
			tr.update("", ev)
		} else {
			now := time.Now()
			tr.mu.Lock()
			tr.handle, tr.startAt, tr.lastCPU, tr.lastTime = h, now, 0, now
			tr.mu.Unlock()
			tr.updateFn("running", func(ts *api.TaskState) { ts.StartedAt = now.UTC() },
				newEvent(api.TaskStarted, "Task started by client"))

			var r exitResult
			userRestart := ""
			select {
			case r = <-h.wait():
			case <-tr.killCh:
				tr.handleKill(h, sig, sigName, killTimeout)
				return
			case userRestart = <-tr.restartCh:
				ev := newEvent(api.TaskRestartSignal, userRestart)
				ev.RestartReason = userRestart
				tr.update("", ev)
				r = tr.stopHandle(h, sig, killTimeout)
			}
			tr.mu.Lock()
			tr.handle = nil
			tr.mu.Unlock()
			tr.update("", terminatedEvent(r))
			if userRestart != "" {
				if tr.killed() {
					tr.update("dead", newEvent(api.TaskKilled, "Task successfully killed"))
					return
				}
				ev := newEvent(api.TaskRestarting, "Task restarting in 0s")
				ev.RestartReason = userRestart
				ev.Details["restart_reason"] = userRestart
				ev.Details["start_delay"] = "0"
				tr.updateFn("pending", func(ts *api.TaskState) { ts.Restarts++; ts.LastRestart = time.Now().UTC() }, ev)
				continue
			}
			res = &r
		}

		d := rt.next(res, startErr)
		switch d.state {
		case api.TaskTerminated:
			tr.update("dead")
			return
		case api.TaskNotRestarting:
			ev := newEvent(api.TaskNotRestarting, d.reason)
			ev.RestartReason, ev.FailsTask = d.reason, true
			ev.Details["restart_reason"] = d.reason
			ev.Details["fails_task"] = "true"
			fail(ev)
			return
		default:
			ev := newEvent(api.TaskRestarting, fmt.Sprintf("Task restarting in %v", d.delay))
			ev.RestartReason, ev.StartDelay = d.reason, int64(d.delay)
			ev.Details["restart_reason"] = d.reason
			ev.Details["start_delay"] = fmt.Sprint(int64(d.delay))
			tr.updateFn("pending", func(ts *api.TaskState) { ts.Restarts++; ts.LastRestart = time.Now().UTC() }, ev)
			select {
			case <-time.After(d.delay):
			case <-tr.killCh:
				tr.emitKilledNotRunning()
				return
			}
		}
	}
}

func terminatedEvent(r exitResult) *api.TaskEvent {
	msg := fmt.Sprintf("Exit Code: %d", r.code)
	if r.signal != 0 {
		msg += fmt.Sprintf(", Signal: %d", r.signal)
	}
	if r.err != nil {
		msg += ", Exit Message: " + fmt.Sprintf("%q", r.err.Error())
	}
	ev := newEvent(api.TaskTerminated, msg)
	ev.ExitCode, ev.Signal = r.code, r.signal
	ev.Details["exit_code"] = fmt.Sprint(r.code)
	ev.Details["signal"] = fmt.Sprint(r.signal)
	ev.Details["oom_killed"] = "false"
	if r.err != nil {
		ev.Message = r.err.Error()
		ev.Details["exit_message"] = r.err.Error()
	}
	return ev
}

func (tr *taskRunner) preKillEvents() []*api.TaskEvent {
	tr.mu.Lock()
	k := tr.kill
	tr.mu.Unlock()
	if k.pre != nil {
		e := *k.pre
		e.Time = time.Now().UnixNano()
		return []*api.TaskEvent{&e}
	}
	return nil
}

func (tr *taskRunner) emitKilledNotRunning() {
	evs := tr.preKillEvents()
	evs = append(evs, newEvent(api.TaskKilled, "Task successfully killed"))
	tr.update("dead", evs...)
}

// stopHandle sends the kill signal, waits up to the kill timeout, then
// SIGKILLs, and returns the exit result.
func (tr *taskRunner) stopHandle(h driverHandle, sig syscall.Signal, timeout time.Duration) exitResult {
	_ = h.signal(sig)
	select {
	case r := <-h.wait():
		return r
	case <-time.After(timeout):
		_ = h.signal(syscall.SIGKILL)
		return <-h.wait()
	}
}

func (tr *taskRunner) handleKill(h driverHandle, sig syscall.Signal, sigName string, timeout time.Duration) {
	evs := tr.preKillEvents()
	verb := "Sent interrupt"
	if sig != syscall.SIGINT {
		verb = "Sent " + sigName
	}
	kev := newEvent(api.TaskKilling, fmt.Sprintf("%s. Waiting %v before force killing", verb, timeout))
	kev.KillTimeout = timeout
	kev.Details["kill_timeout"] = timeout.String()
	evs = append(evs, kev)
	tr.update("", evs...)
	r := tr.stopHandle(h, sig, timeout)
	tr.mu.Lock()
	tr.handle = nil
	tr.mu.Unlock()
	tr.update("", terminatedEvent(r))
	tr.update("dead", newEvent(api.TaskKilled, "Task successfully killed"))
}

// restart asks a running task to restart (POST .../restart).
func (tr *taskRunner) restart(reason string) error {
	st, _ := tr.snapshot()
	if st != "running" {
		return errf(400, "Task not running")
	}
	select {
	case tr.restartCh <- reason:
	default:
	}
	return nil
}

func (tr *taskRunner) currentHandle() (driverHandle, []string, string) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.handle, tr.env, tr.dir
}

func newRand() *rand.Rand { return rand.New(rand.NewSource(time.Now().UnixNano())) }
