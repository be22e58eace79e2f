// scheduler.go owns job registration/deregistration, evaluations and the
// placement of allocations: a reconciler (count per task group, destructive
// vs in-place updates, stops), a bin-packing feasibility check by CPU MHz,
// reserved cores, MemoryMB, datacenter, node pool, driver and constraints,
// port assignment, and blocked evaluations that are re-processed when
// capacity frees up.
package main

import (
	"encoding/json"
	"fmt"
	"math/rand"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/nomad/api"
)

const (
	minDynamicPort = 20000
	maxDynamicPort = 32000

	descNotNeeded = "alloc not needed due to job update"
	descUpdating  = "alloc is being updated due to job update"
	descMigrating = "alloc is being migrated"
)

type httpError struct {
	code int
	msg  string
}

func (e *httpError) Error() string { return e.msg }

func errf(code int, format string, args ...any) error {
	return &httpError{code: code, msg: fmt.Sprintf(format, args...)}
}

// jobRegisterReply is structs.JobRegisterResponse as the agent marshals it.
type jobRegisterReply struct {
	EvalID          string
	EvalCreateIndex uint64
	JobModifyIndex  uint64
	Warnings        string
	Index           uint64
	LastContact     int64
	KnownLeader     bool
	NextToken       string
}

// jobDeregisterReply is structs.JobDeregisterResponse.
type jobDeregisterReply struct {
	EvalID          string
	EvalCreateIndex uint64
	JobModifyIndex  uint64
	VolumeEvalID    string
	VolumeEvalIndex uint64
	Index           uint64
	LastContact     int64
	KnownLeader     bool
	NextToken       string
}

func cloneJob(j *api.Job) *api.Job {
	b, _ := json.Marshal(j)
	var out api.Job
	_ = json.Unmarshal(b, &out)
	return &out
}

// specJSON is the job without the fields the server sets (structs.Job.SpecChanged).
func specJSON(j *api.Job) string {
	c := cloneJob(j)
	c.Status, c.StatusDescription, c.Stable, c.Version = nil, nil, nil, nil
	c.SubmitTime, c.CreateIndex, c.ModifyIndex, c.JobModifyIndex = nil, nil, nil, nil
	c.NomadTokenID = nil
	if c.Stop == nil {
		c.Stop = ptr(false)
	}
	b, _ := json.Marshal(c)
	return string(b)
}

func groupFingerprint(j *api.Job, tg string) string {
	for _, g := range j.TaskGroups {
		if *g.Name == tg {
			c := *g
			c.Count = nil
			c.Scaling = nil
			b, _ := json.Marshal(struct {
				G    api.TaskGroup
				Meta map[string]string
			}{c, j.Meta})
			return string(b)
		}
	}
	return ""
}

// validateJob does the subset of structs.Job.Validate a client is likely to trip.
func validateJob(j *api.Job) error {
	var errs []string
	if j.ID == nil || *j.ID == "" {
		errs = append(errs, "Missing job ID")
	} else if strings.Contains(*j.ID, " ") {
		errs = append(errs, "Job ID contains a space")
	}
	if j.Name == nil || *j.Name == "" {
		errs = append(errs, "Missing job name")
	}
	switch deref(j.Type) {
	case api.JobTypeService, api.JobTypeBatch, api.JobTypeSystem, api.JobTypeSysbatch:
	default:
		errs = append(errs, fmt.Sprintf("Invalid job type: %q", deref(j.Type)))
	}
	if len(j.TaskGroups) == 0 {
		errs = append(errs, "Missing job task groups")
	}
	seen := map[string]bool{}
	for i, tg := range j.TaskGroups {
		name := deref(tg.Name)
		if name == "" {
			errs = append(errs, fmt.Sprintf("Job task group %d missing name", i+1))
			continue
		}
		if seen[name] {
			errs = append(errs, fmt.Sprintf("Job task group %d redefines '%s' from group %d", i+1, name, i))
		}
		seen[name] = true
		if deref(tg.Count) < 0 {
			errs = append(errs, fmt.Sprintf("Task group %s validation failed: Task group count can't be negative", name))
		}
		if len(tg.Tasks) == 0 {
			errs = append(errs, fmt.Sprintf("Task group %s validation failed: Missing tasks for task group", name))
		}
		tseen := map[string]bool{}
		for _, t := range tg.Tasks {
			if t.Name == "" {
				errs = append(errs, fmt.Sprintf("Task group %s validation failed: Task missing name", name))
			} else if tseen[t.Name] {
				errs = append(errs, fmt.Sprintf("Task group %s validation failed: Task %s redefined", name, t.Name))
			}
			tseen[t.Name] = true
			if t.Driver == "" {
				errs = append(errs, fmt.Sprintf("Task group %s validation failed: Task %s validation failed: Missing task driver", name, t.Name))
			}
			if t.Driver == "raw_exec" || t.Driver == "exec" {
				if c, _ := t.Config["command"].(string); c == "" {
					errs = append(errs, fmt.Sprintf("Task group %s validation failed: Task %s validation failed: missing command", name, t.Name))
				}
			}
			if t.Lifecycle != nil {
				switch t.Lifecycle.Hook {
				case "prestart", "poststart", "poststop":
				default:
					errs = append(errs, fmt.Sprintf("Task group %s validation failed: Task %s validation failed: invalid hook: %v", name, t.Name, t.Lifecycle.Hook))
				}
			}
		}
	}
	if len(errs) == 0 {
		return nil
	}
	msg := fmt.Sprintf("%d error occurred:\n", len(errs))
	if len(errs) > 1 {
		msg = fmt.Sprintf("%d errors occurred:\n", len(errs))
	}
	for _, e := range errs {
		msg += "\t* " + e + "\n"
	}
	return errf(400, "%s\n", msg)
}

// registerJob is Job.Register: upsert the job when its spec changed, create
// an evaluation and process it.
func (s *Store) registerJob(job *api.Job, enforceIndex bool, jobModifyIndex uint64) (*jobRegisterReply, error) {
	s.mu.Lock()
	defer s.unlockCommit()
	key := jobKey{*job.Namespace, *job.ID}
	old := s.jobs[key]
	if enforceIndex {
		cur := uint64(0)
		if old != nil {
			cur = deref(old.JobModifyIndex)
		}
		if jobModifyIndex == 0 && old != nil {
			return nil, errf(400, "Enforcing job modify index 0: job already exists")
		}
		if jobModifyIndex != cur {
			return nil, errf(400, "Enforcing job modify index %d: job exists with conflicting job modify index: %d", jobModifyIndex, cur)
		}
	}
	idx := s.nextIndex()
	now := time.Now().UnixNano()
	cur := old
	if old == nil || specJSON(old) != specJSON(job) {
		job.Stop = ptr(deref(job.Stop))
		job.Stable = ptr(false)
		job.StatusDescription = ptr("")
		job.SubmitTime = ptr(now)
		job.JobModifyIndex = ptr(idx)
		job.ModifyIndex = ptr(idx)
		if old != nil {
			job.Version = ptr(deref(old.Version) + 1)
			job.CreateIndex = old.CreateIndex
		} else {
			job.Version = ptr(uint64(0))
			job.CreateIndex = ptr(idx)
		}
		job.Status = ptr("pending")
		s.jobs[key] = job
		delete(s.purged, key)
		s.touch(tblJobs)
		cur = job
	}
	reply := &jobRegisterReply{JobModifyIndex: deref(cur.JobModifyIndex), KnownLeader: true}
	if cur.Periodic != nil || (cur.ParameterizedJob != nil && !cur.Dispatched) {
		// Periodic and parameterized jobs get no evaluation.
		if cur == job {
			cur.Status = ptr(s.jobStatus(cur))
			s.emitJob("JobRegistered", cur)
		}
		reply.Index = s.index
		return reply, nil
	}
	ev := s.newEval(cur, "job-register")
	if cur == job {
		cur.Status = ptr(s.jobStatus(cur))
		s.emitJob("JobRegistered", cur)
	}
	s.processEval(ev)
	reply.EvalID = ev.ID
	reply.EvalCreateIndex = ev.CreateIndex
	reply.Index = s.index
	return reply, nil
}

// deregisterJob is Job.Deregister.
func (s *Store) deregisterJob(ns, id string, purge bool) (*jobDeregisterReply, error) {
	s.mu.Lock()
	defer s.unlockCommit()
	key := jobKey{ns, id}
	job := s.jobs[key]
	if job == nil {
		return nil, errf(404, "job not found")
	}
	idx := s.nextIndex()
	if purge {
		delete(s.jobs, key)
		s.purged[key] = true
		job.ModifyIndex = ptr(idx)
	} else {
		if !deref(job.Stop) {
			// A new job version: allocations keep the version they run.
			job = cloneJob(job)
			s.jobs[key] = job
			job.Stop = ptr(true)
			job.Version = ptr(deref(job.Version) + 1)
			job.JobModifyIndex = ptr(idx)
			job.SubmitTime = ptr(time.Now().UnixNano())
		}
		job.ModifyIndex = ptr(idx)
	}
	s.touch(tblJobs)
	ev := s.newEval(job, "job-deregister")
	if !purge {
		job.Status = ptr(s.jobStatus(job))
	}
	s.emitJob("JobDeregistered", job)
	s.processEval(ev)
	if !purge {
		s.refreshJobStatus(ns, id, "JobDeregistered")
	}
	return &jobDeregisterReply{EvalID: ev.ID, EvalCreateIndex: ev.CreateIndex,
		JobModifyIndex: deref(job.JobModifyIndex), Index: s.index, KnownLeader: true}, nil
}

// stopAlloc is Alloc.Stop: mark the allocation for migration and evaluate
// the job, which stops it and places a replacement.
func (s *Store) stopAllocation(id string) (string, uint64, error) {
	s.mu.Lock()
	defer s.unlockCommit()
	a := s.allocs[id]
	if a == nil {
		return "", 0, errf(404, "alloc not found")
	}
	s.nextIndex()
	a.DesiredTransition.Migrate = ptr(true)
	a.ModifyIndex = s.cur
	s.touch(tblAllocs)
	s.emitAlloc("AllocationUpdateDesiredStatus", a)
	job := s.jobs[jobKey{a.Namespace, a.JobID}]
	if job == nil {
		job = a.Job
	}
	ev := s.newEval(job, "alloc-stop")
	s.processEval(ev)
	return ev.ID, s.index, nil
}

func (s *Store) newEval(job *api.Job, triggeredBy string) *api.Evaluation {
	now := time.Now().UnixNano()
	ev := &api.Evaluation{
		ID: uuid(), Namespace: *job.Namespace, Priority: deref(job.Priority), Type: deref(job.Type),
		TriggeredBy: triggeredBy, JobID: *job.ID, JobModifyIndex: deref(job.JobModifyIndex),
		Status: api.EvalStatusPending, CreateIndex: s.cur, ModifyIndex: s.cur,
		CreateTime: now, ModifyTime: now,
	}
	s.evals[ev.ID] = ev
	s.touch(tblEvals)
	s.emitEval(ev)
	return ev
}

type placement struct {
	tg    *api.TaskGroup
	index int
	prev  string
}

func allocIndex(name string) int {
	i := strings.LastIndex(name, "[")
	if i < 0 {
		return 0
	}
	n, _ := strconv.Atoi(strings.TrimSuffix(name[i+1:], "]"))
	return n
}

// processEval runs the generic service/batch scheduler for one evaluation.
func (s *Store) processEval(ev *api.Evaluation) {
	key := jobKey{ev.Namespace, ev.JobID}
	job := s.jobs[key]
	var existing []*api.Allocation
	for _, a := range s.jobAllocs(ev.Namespace, ev.JobID) {
		if a.DesiredStatus == api.AllocDesiredStatusRun {
			existing = append(existing, a)
		}
	}
	type stop struct {
		a    *api.Allocation
		desc string
	}
	var stops []stop
	var inplace []*api.Allocation
	var places []placement
	stopped := job == nil || deref(job.Stop)
	if stopped {
		for _, a := range existing {
			stops = append(stops, stop{a, descNotNeeded})
		}
	} else {
		groups := map[string]bool{}
		for _, tg := range job.TaskGroups {
			groups[*tg.Name] = true
			var keep []*api.Allocation
			prev := map[int]string{}
			for _, a := range existing {
				if a.TaskGroup != *tg.Name {
					continue
				}
				switch {
				case a.DesiredTransition.ShouldMigrate():
					stops = append(stops, stop{a, descMigrating})
					prev[allocIndex(a.Name)] = a.ID
				case groupFingerprint(a.Job, *tg.Name) != groupFingerprint(job, *tg.Name):
					stops = append(stops, stop{a, descUpdating})
					prev[allocIndex(a.Name)] = a.ID
				default:
					keep = append(keep, a)
				}
			}
			sort.Slice(keep, func(i, j int) bool { return allocIndex(keep[i].Name) < allocIndex(keep[j].Name) })
			count := deref(tg.Count)
			for len(keep) > count {
				stops = append(stops, stop{keep[len(keep)-1], descNotNeeded})
				keep = keep[:len(keep)-1]
			}
			used := map[int]bool{}
			for _, a := range keep {
				used[allocIndex(a.Name)] = true
				if deref(a.Job.Version) != deref(job.Version) || deref(a.Job.JobModifyIndex) != deref(job.JobModifyIndex) {
					inplace = append(inplace, a)
				}
			}
			for i := 0; len(keep)+countTG(places, *tg.Name) < count; i++ {
				if !used[i] {
					places = append(places, placement{tg: tg, index: i, prev: prev[i]})
				}
			}
		}
		for _, a := range existing {
			if !groups[a.TaskGroup] {
				stops = append(stops, stop{a, descNotNeeded})
			}
		}
	}

	if ev.Status == api.EvalStatusBlocked && len(places) == 0 && len(stops) == 0 && len(inplace) == 0 {
		s.nextIndex()
		ev.Status = api.EvalStatusComplete
		ev.StatusDescription = ""
		ev.ModifyIndex, ev.ModifyTime = s.cur, time.Now().UnixNano()
		s.touch(tblEvals)
		s.emitEval(ev)
		s.refreshJobStatus(ev.Namespace, ev.JobID, "EvaluationUpdated")
		return
	}

	// Plan application.
	s.nextIndex()
	now := time.Now().UnixNano()
	for _, st := range stops {
		a := st.a
		a.DesiredStatus = api.AllocDesiredStatusStop
		a.DesiredDescription = st.desc
		a.ModifyIndex, a.AllocModifyIndex, a.ModifyTime = s.cur, s.cur, now
		s.releasePorts(a)
		s.emitAlloc("PlanResult", a)
		s.capacityFree = true
		id := a.ID
		if s.stopAlloc != nil {
			s.defer_(func() { s.stopAlloc(id) })
		}
	}
	for _, a := range inplace {
		a.Job = cloneJob(job)
		a.ModifyIndex, a.AllocModifyIndex, a.ModifyTime = s.cur, s.cur, now
		s.emitAlloc("PlanResult", a)
	}
	failed := map[string]*api.AllocationMetric{}
	queued := map[string]int{}
	var planned []*api.Allocation
	for _, p := range places {
		name := *p.tg.Name
		queued[name] += 0
		if m := failed[name]; m != nil {
			m.CoalescedFailures++
			queued[name]++
			continue
		}
		a, metric := s.place(ev, job, p, planned)
		if a == nil {
			failed[name] = metric
			queued[name]++
			continue
		}
		planned = append(planned, a)
		if p.prev != "" {
			a.PreviousAllocation = p.prev
			if old := s.allocs[p.prev]; old != nil {
				old.NextAllocation = a.ID
			}
		}
		s.allocs[a.ID] = a
		s.emitAlloc("PlanResult", a)
		if s.startAlloc != nil {
			aa := a
			s.defer_(func() { s.startAlloc(aa) })
		}
	}
	if len(stops)+len(inplace)+len(planned) > 0 {
		s.touch(tblAllocs)
		if job != nil {
			s.refreshJobStatus(ev.Namespace, ev.JobID, "PlanResult")
		}
	}

	// Evaluation update.
	s.nextIndex()
	now = time.Now().UnixNano()
	wasBlocked := ev.Status == api.EvalStatusBlocked
	if len(failed) > 0 {
		ev.QueuedAllocations = queued
		if wasBlocked {
			// Reblock: the evaluation stays blocked with fresh metrics.
			ev.FailedTGAllocs = failed
			ev.ModifyIndex, ev.ModifyTime = s.cur, now
			s.emitEval(ev)
		} else {
			ev.Status = api.EvalStatusComplete
			ev.FailedTGAllocs = failed
			s.cancelBlocked(key, "")
			blocked := &api.Evaluation{
				ID: uuid(), Namespace: ev.Namespace, Priority: ev.Priority, Type: ev.Type,
				TriggeredBy: "queued-allocs", JobID: ev.JobID, JobModifyIndex: ev.JobModifyIndex,
				Status: api.EvalStatusBlocked, StatusDescription: "created due to placement conflicts",
				PreviousEval: ev.ID, FailedTGAllocs: failed, QueuedAllocations: queued,
				ClassEligibility: map[string]bool{"v1:0": true}, CreateIndex: s.cur, ModifyIndex: s.cur,
				CreateTime: now, ModifyTime: now,
			}
			s.evals[blocked.ID] = blocked
			ev.BlockedEval = blocked.ID
			ev.ModifyIndex, ev.ModifyTime = s.cur, now
			s.emitEval(ev)
			s.emitEval(blocked)
		}
	} else {
		ev.Status = api.EvalStatusComplete
		ev.StatusDescription = ""
		if !wasBlocked {
			ev.FailedTGAllocs = nil
		}
		ev.QueuedAllocations = queued
		ev.ModifyIndex, ev.ModifyTime = s.cur, now
		s.emitEval(ev)
		s.cancelBlocked(key, ev.ID)
	}
	s.touch(tblEvals)
	if s.jobs[key] != nil {
		s.refreshJobStatus(ev.Namespace, ev.JobID, "EvaluationUpdated")
	}
}

func countTG(p []placement, tg string) int {
	n := 0
	for _, x := range p {
		if *x.tg.Name == tg {
			n++
		}
	}
	return n
}

// cancelBlocked cancels the job's other blocked evaluations: a newer
// evaluation supersedes them (real Nomad keeps one blocked eval per job).
func (s *Store) cancelBlocked(key jobKey, except string) {
	for _, e := range s.jobEvals(key.ns, key.id) {
		if e.Status == api.EvalStatusBlocked && e.ID != except {
			e.Status = api.EvalStatusCancelled
			e.StatusDescription = "evaluation cancelled: superseded by a newer evaluation"
			e.ModifyIndex, e.ModifyTime = s.cur, time.Now().UnixNano()
			s.touch(tblEvals)
			s.emitEval(e)
		}
	}
}

// processBlockedEvals re-runs blocked evaluations after capacity was freed.
func (s *Store) processBlockedEvals() {
	for round := 0; round < 8; round++ {
		var blocked []*api.Evaluation
		for _, e := range s.evals {
			if e.Status == api.EvalStatusBlocked {
				blocked = append(blocked, e)
			}
		}
		if len(blocked) == 0 {
			return
		}
		sort.Slice(blocked, func(i, j int) bool {
			if blocked[i].Priority != blocked[j].Priority {
				return blocked[i].Priority > blocked[j].Priority
			}
			return blocked[i].CreateIndex < blocked[j].CreateIndex
		})
		for _, e := range blocked {
			if e.Status == api.EvalStatusBlocked {
				s.processEval(e)
			}
		}
		if !s.capacityFree {
			return
		}
		s.capacityFree = false
	}
}

// ---- feasibility and bin packing ------------------------------------------

type taskAsk struct {
	cpu, cores, mem, memMax int
}

func (s *Store) mhzPerCore(n *api.Node) int {
	c := int(n.NodeResources.Cpu.TotalCpuCores)
	if c == 0 {
		c = 1
	}
	return int(n.NodeResources.Cpu.CpuShares) / c
}

func taskResources(t *api.Task) taskAsk {
	r := t.Resources
	if r == nil {
		return taskAsk{cpu: 100, mem: 300}
	}
	return taskAsk{cpu: deref(r.CPU), cores: deref(r.Cores), mem: deref(r.MemoryMB), memMax: deref(r.MemoryMaxMB)}
}

type nodeUsage struct{ cpu, cores, mem int }

func (s *Store) usage(nodeID string, planned []*api.Allocation) nodeUsage {
	var u nodeUsage
	add := func(a *api.Allocation) {
		if a.NodeID != nodeID || allocTerminal(a) || a.AllocatedResources == nil {
			return
		}
		for _, t := range a.AllocatedResources.Tasks {
			u.cpu += int(t.Cpu.CpuShares)
			u.cores += len(t.Cpu.ReservedCores)
			u.mem += int(t.Memory.MemoryMB)
		}
	}
	for _, a := range s.allocs {
		add(a)
	}
	for _, a := range planned {
		add(a)
	}
	return u
}

func globMatch(pattern, s string) bool {
	ok, err := path.Match(pattern, s)
	return err == nil && ok
}

var driverNames = []string{"raw_exec", "exec", "docker", "podman", "java", "qemu", "mock_driver"}

func (s *Store) nodeDriverOK(n *api.Node, driver string) bool {
	d := n.Drivers[driver]
	return d != nil && d.Detected && d.Healthy
}

// resolveTarget interpolates a constraint target against a node.
func resolveTarget(target string, n *api.Node) (string, bool) {
	if !strings.HasPrefix(target, "${") || !strings.HasSuffix(target, "}") {
		return target, true
	}
	v := target[2 : len(target)-1]
	switch {
	case v == "node.unique.id":
		return n.ID, true
	case v == "node.datacenter":
		return n.Datacenter, true
	case v == "node.unique.name":
		return n.Name, true
	case v == "node.class":
		return n.NodeClass, true
	case v == "node.pool":
		return n.NodePool, true
	case strings.HasPrefix(v, "attr."):
		x, ok := n.Attributes[strings.TrimPrefix(v, "attr.")]
		return x, ok
	case strings.HasPrefix(v, "meta."):
		x, ok := n.Meta[strings.TrimPrefix(v, "meta.")]
		return x, ok
	}
	return "", false
}

func constraintString(c *api.Constraint) string {
	return fmt.Sprintf("%s %s %s", c.LTarget, c.Operand, c.RTarget)
}

// constraintMet checks one constraint (distinct_hosts is handled by the caller).
func constraintMet(c *api.Constraint, n *api.Node) bool {
	l, lok := resolveTarget(c.LTarget, n)
	r, rok := resolveTarget(c.RTarget, n)
	switch c.Operand {
	case "", "=", "==", "is":
		return lok && rok && l == r
	case "!=", "not":
		return !(lok && rok && l == r)
	case "is_set":
		return lok
	case "is_not_set":
		return !lok
	case "regexp":
		re, err := regexp.Compile(r)
		return lok && err == nil && re.MatchString(l)
	case "set_contains", "set_contains_all":
		have := map[string]bool{}
		for _, x := range strings.Split(l, ",") {
			have[strings.TrimSpace(x)] = true
		}
		for _, x := range strings.Split(r, ",") {
			if !have[strings.TrimSpace(x)] {
				return false
			}
		}
		return lok
	case "set_contains_any":
		have := map[string]bool{}
		for _, x := range strings.Split(l, ",") {
			have[strings.TrimSpace(x)] = true
		}
		for _, x := range strings.Split(r, ",") {
			if have[strings.TrimSpace(x)] {
				return lok
			}
		}
		return false
	case "<", "<=", ">", ">=":
		lf, e1 := strconv.ParseFloat(l, 64)
		rf, e2 := strconv.ParseFloat(r, 64)
		if !lok || !rok {
			return false
		}
		if e1 != nil || e2 != nil {
			switch c.Operand {
			case "<":
				return l < r
			case "<=":
				return l <= r
			case ">":
				return l > r
			default:
				return l >= r
			}
		}
		switch c.Operand {
		case "<":
			return lf < rf
		case "<=":
			return lf <= rf
		case ">":
			return lf > rf
		default:
			return lf >= rf
		}
	case "distinct_hosts", "distinct_property", "version", "semver":
		return true
	}
	return false
}

// place finds a node for one allocation; on failure it returns the metric.
func (s *Store) place(ev *api.Evaluation, job *api.Job, p placement, planned []*api.Allocation) (*api.Allocation, *api.AllocationMetric) {
	start := time.Now()
	tg := p.tg
	pool := deref(job.NodePool)
	if pool == "" {
		pool = "default"
	}
	m := &api.AllocationMetric{NodePool: pool, NodesAvailable: map[string]int{}}
	var constraints []*api.Constraint
	constraints = append(constraints, job.Constraints...)
	constraints = append(constraints, tg.Constraints...)
	drivers := map[string]bool{}
	var asks []taskAsk
	for _, t := range tg.Tasks {
		constraints = append(constraints, t.Constraints...)
		drivers[t.Driver] = true
		asks = append(asks, taskResources(t))
	}
	distinct := false
	for _, c := range constraints {
		if c.Operand == "distinct_hosts" && (c.RTarget == "" || c.RTarget == "true") {
			distinct = true
		}
	}
	type cand struct {
		n     *api.Node
		score float64
	}
	var cands []cand
	for _, n := range s.nodes {
		if pool != "all" && n.NodePool != pool {
			continue
		}
		m.NodesInPool++
		dcOK := false
		for _, dc := range job.Datacenters {
			if globMatch(dc, n.Datacenter) {
				dcOK = true
			}
		}
		if !dcOK {
			continue
		}
		m.NodesAvailable[n.Datacenter]++
		m.NodesEvaluated++
		if n.Status != "ready" || n.SchedulingEligibility != "eligible" {
			m.NodesFiltered++
			continue
		}
		filtered := ""
		for d := range drivers {
			if !s.nodeDriverOK(n, d) {
				filtered = "missing drivers"
			}
		}
		if filtered == "" {
			for _, c := range constraints {
				if c.Operand == "distinct_hosts" {
					continue
				}
				if !constraintMet(c, n) {
					filtered = constraintString(c)
					break
				}
			}
		}
		if filtered == "" && distinct {
			for _, a := range append(s.jobAllocs(*job.Namespace, *job.ID), planned...) {
				if a.NodeID == n.ID && a.TaskGroup == *tg.Name && !allocTerminal(a) {
					filtered = "distinct_hosts"
				}
			}
		}
		if filtered != "" {
			m.NodesFiltered++
			if m.ConstraintFiltered == nil {
				m.ConstraintFiltered = map[string]int{}
			}
			m.ConstraintFiltered[filtered]++
			continue
		}
		u := s.usage(n.ID, planned)
		per := s.mhzPerCore(n)
		cpu, cores, mem := 0, 0, 0
		for _, a := range asks {
			cpu += a.cpu + a.cores*per
			cores += a.cores
			mem += a.mem
		}
		dim := ""
		switch {
		case u.cores+cores > int(n.NodeResources.Cpu.TotalCpuCores):
			dim = "cores"
		case u.cpu+cpu > int(n.NodeResources.Cpu.CpuShares)-int(n.ReservedResources.Cpu.CpuShares):
			dim = "cpu"
		case u.mem+mem > int(n.NodeResources.Memory.MemoryMB)-int(n.ReservedResources.Memory.MemoryMB):
			dim = "memory"
		default:
			if col := s.portCollision(n.ID, tg, planned); col != "" {
				dim = col
			}
		}
		if dim != "" {
			m.NodesExhausted++
			if m.DimensionExhausted == nil {
				m.DimensionExhausted = map[string]int{}
			}
			m.DimensionExhausted[dim]++
			continue
		}
		// Bin packing: prefer the fullest node.
		score := float64(u.cpu+cpu)/float64(n.NodeResources.Cpu.CpuShares) + float64(u.mem+mem)/float64(n.NodeResources.Memory.MemoryMB)
		cands = append(cands, cand{n, score})
	}
	m.AllocationTime = time.Since(start)
	if len(cands) == 0 {
		return nil, m
	}
	sort.SliceStable(cands, func(i, j int) bool { return cands[i].score > cands[j].score })
	n := cands[0].n
	m.ScoreMetaData = []*api.NodeScoreMeta{{NodeID: n.ID, Scores: map[string]float64{"binpack": cands[0].score / 2}, NormScore: cands[0].score / 2}}

	now := time.Now().UnixNano()
	a := &api.Allocation{
		ID: uuid(), Namespace: *job.Namespace, EvalID: ev.ID,
		Name:   fmt.Sprintf("%s.%s[%d]", *job.ID, *tg.Name, p.index),
		NodeID: n.ID, NodeName: n.Name, JobID: *job.ID, Job: cloneJob(job), TaskGroup: *tg.Name,
		Metrics: m, DesiredStatus: api.AllocDesiredStatusRun, ClientStatus: api.AllocClientStatusPending,
		CreateIndex: s.cur, ModifyIndex: s.cur, AllocModifyIndex: s.cur, CreateTime: now, ModifyTime: now,
	}
	s.allocateResources(a, n, tg)
	return a, nil
}

func (s *Store) portCollision(nodeID string, tg *api.TaskGroup, planned []*api.Allocation) string {
	used := s.ports[nodeID]
	for _, net := range tg.Networks {
		for _, p := range net.ReservedPorts {
			if p.Value <= 0 {
				continue
			}
			if _, ok := used[p.Value]; ok && !p.IgnoreCollision {
				return fmt.Sprintf("network: reserved port collision %s=%d", p.Label, p.Value)
			}
			for _, a := range planned {
				if a.NodeID != nodeID || a.AllocatedResources == nil {
					continue
				}
				for _, pm := range a.AllocatedResources.Shared.Ports {
					if pm.Value == p.Value {
						return fmt.Sprintf("network: reserved port collision %s=%d", p.Label, p.Value)
					}
				}
			}
		}
	}
	return ""
}

func (s *Store) allocateResources(a *api.Allocation, n *api.Node, tg *api.TaskGroup) {
	ar := &api.AllocatedResources{Tasks: map[string]*api.AllocatedTaskResources{}}
	per := s.mhzPerCore(n)
	usedCores := map[uint16]bool{}
	for _, o := range s.allocs {
		if o.NodeID == n.ID && !allocTerminal(o) && o.AllocatedResources != nil {
			for _, t := range o.AllocatedResources.Tasks {
				for _, c := range t.Cpu.ReservedCores {
					usedCores[c] = true
				}
			}
		}
	}
	totalCPU, totalMem := 0, 0
	a.TaskResources = map[string]*api.Resources{}
	for _, t := range tg.Tasks {
		ask := taskResources(t)
		tr := &api.AllocatedTaskResources{}
		tr.Cpu.CpuShares = int64(ask.cpu + ask.cores*per)
		for c := uint16(0); len(tr.Cpu.ReservedCores) < ask.cores && c < n.NodeResources.Cpu.TotalCpuCores; c++ {
			if !usedCores[c] {
				usedCores[c] = true
				tr.Cpu.ReservedCores = append(tr.Cpu.ReservedCores, c)
			}
		}
		tr.Memory.MemoryMB = int64(ask.mem)
		tr.Memory.MemoryMaxMB = int64(ask.memMax)
		if ask.memMax == 0 {
			tr.Memory.MemoryMaxMB = 0
		}
		ar.Tasks[t.Name] = tr
		totalCPU += int(tr.Cpu.CpuShares)
		totalMem += ask.mem
		a.TaskResources[t.Name] = &api.Resources{CPU: ptr(int(tr.Cpu.CpuShares)), MemoryMB: ptr(ask.mem), MemoryMaxMB: ptr(ask.memMax), DiskMB: ptr(0)}
	}
	disk := 300
	if tg.EphemeralDisk != nil && tg.EphemeralDisk.SizeMB != nil {
		disk = *tg.EphemeralDisk.SizeMB
	}
	ar.Shared.DiskMB = int64(disk)
	if s.ports[n.ID] == nil {
		s.ports[n.ID] = map[int]string{}
	}
	used := s.ports[n.ID]
	ip := n.Attributes["unique.network.ip-address"]
	for _, nw := range tg.Networks {
		mode := nw.Mode
		if mode == "" {
			mode = "host"
		}
		out := &api.NetworkResource{Mode: mode, Device: "", IP: ip, CIDR: ip + "/32", MBits: nw.MBits, DNS: nw.DNS, Hostname: nw.Hostname}
		for _, p := range nw.ReservedPorts {
			to := p.To
			if to == -1 {
				to = p.Value
			}
			used[p.Value] = a.ID
			out.ReservedPorts = append(out.ReservedPorts, api.Port{Label: p.Label, Value: p.Value, To: to, HostNetwork: orDefault(p.HostNetwork)})
			ar.Shared.Ports = append(ar.Shared.Ports, api.PortMapping{Label: p.Label, Value: p.Value, To: to, HostIP: ip})
		}
		for _, p := range nw.DynamicPorts {
			v := 0
			for tries := 0; tries < 20000; tries++ {
				c := minDynamicPort + rand.Intn(maxDynamicPort-minDynamicPort+1)
				if _, ok := used[c]; !ok {
					v = c
					break
				}
			}
			used[v] = a.ID
			to := p.To
			if to == -1 {
				to = v
			}
			out.DynamicPorts = append(out.DynamicPorts, api.Port{Label: p.Label, Value: v, To: to, HostNetwork: orDefault(p.HostNetwork)})
			ar.Shared.Ports = append(ar.Shared.Ports, api.PortMapping{Label: p.Label, Value: v, To: to, HostIP: ip})
		}
		ar.Shared.Networks = append(ar.Shared.Networks, out)
		if mode == "bridge" && a.NetworkStatus == nil {
			a.NetworkStatus = &api.AllocNetworkStatus{InterfaceName: "eth0", Address: ip}
		}
	}
	a.AllocatedResources = ar
	a.Resources = &api.Resources{CPU: ptr(totalCPU), MemoryMB: ptr(totalMem), DiskMB: ptr(disk), Networks: ar.Shared.Networks}
}

func orDefault(s string) string {
	if s == "" {
		return "default"
	}
	return s
}

func (s *Store) releasePorts(a *api.Allocation) {
	used := s.ports[a.NodeID]
	for p, id := range used {
		if id == a.ID {
			delete(used, p)
		}
	}
}
