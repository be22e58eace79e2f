// state.go owns the in-memory state store: jobs, evaluations, allocations
// and nodes, the raft-like index (one global counter, plus the index of the
// last change per table as real Nomad reports for list queries), change
// notification for blocking queries and event publication.
//
// Everything is guarded by Store.mu. A mutating operation locks, calls
// s.nextIndex() once per logical raft apply, changes objects in place, emits
// events and ends with s.unlockCommit(), which publishes the events, wakes
// blocked readers and runs the deferred side effects (starting/stopping
// allocation runners) outside the lock.
package main

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/nomad/api"
)

const (
	tblJobs   = "jobs"
	tblEvals  = "evals"
	tblAllocs = "allocs"
	tblNodes  = "nodes"
)

type jobKey struct{ ns, id string }

// Store is the fake's whole cluster state.
type Store struct {
	mu       sync.Mutex
	index    uint64
	cur      uint64
	tableIdx map[string]uint64
	changed  chan struct{}

	jobs   map[jobKey]*api.Job
	purged map[jobKey]bool // purged jobs whose allocs are garbage collected once terminal
	evals  map[string]*api.Evaluation
	allocs map[string]*api.Allocation
	nodes  []*api.Node

	// port bookkeeping: node ID -> port -> alloc ID
	ports map[string]map[int]string

	events  *eventBuffer
	pending []*wireEvent

	after        []func()
	capacityFree bool

	// hooks into the client side (runner.go)
	startAlloc func(a *api.Allocation)
	stopAlloc  func(allocID string)
	gcAlloc    func(allocID string)
}

func newStore() *Store {
	return &Store{
		tableIdx: map[string]uint64{},
		changed:  make(chan struct{}),
		jobs:     map[jobKey]*api.Job{},
		purged:   map[jobKey]bool{},
		evals:    map[string]*api.Evaluation{},
		allocs:   map[string]*api.Allocation{},
		ports:    map[string]map[int]string{},
		events:   newEventBuffer(4096),
	}
}

func uuid() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = (b[6] & 0x0f) | 0x40
	b[8] = (b[8] & 0x3f) | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// nextIndex starts a new raft apply: flushes pending events of the previous
// one and returns the new index.
func (s *Store) nextIndex() uint64 {
	s.flushEvents()
	s.index++
	s.cur = s.index
	return s.cur
}

func (s *Store) touch(table string) { s.tableIdx[table] = s.cur }

func (s *Store) tableIndex(tables ...string) uint64 {
	var m uint64
	for _, t := range tables {
		if s.tableIdx[t] > m {
			m = s.tableIdx[t]
		}
	}
	if m == 0 {
		m = 1
	}
	return m
}

func (s *Store) flushEvents() {
	if len(s.pending) == 0 {
		return
	}
	s.events.append(s.cur, s.pending)
	s.pending = nil
}

// defer_ runs fn after the lock is released.
func (s *Store) defer_(fn func()) { s.after = append(s.after, fn) }

// unlockCommit finishes a mutating operation.
func (s *Store) unlockCommit() {
	if s.capacityFree {
		s.capacityFree = false
		s.processBlockedEvals()
	}
	s.gcPurged()
	s.flushEvents()
	close(s.changed)
	s.changed = make(chan struct{})
	after := s.after
	s.after = nil
	s.mu.Unlock()
	for _, fn := range after {
		fn()
	}
}

// ---- events ----------------------------------------------------------------

func (s *Store) emit(topic api.Topic, typ, key, ns string, filterKeys []string, payloadName string, payload any) {
	b, err := json.Marshal(map[string]any{payloadName: payload})
	if err != nil {
		b = []byte("{}")
	}
	s.pending = append(s.pending, &wireEvent{
		Topic: topic, Type: typ, Key: key, Namespace: ns,
		FilterKeys: filterKeys, Index: s.cur, Payload: b,
	})
}

func (s *Store) emitAlloc(typ string, a *api.Allocation) {
	// Real Nomad strips the job from allocation events to keep them small.
	c := *a
	c.Job = nil
	s.emit(api.TopicAllocation, typ, a.ID, a.Namespace, []string{a.JobID, a.DeploymentID}, "Allocation", &c)
}

func (s *Store) emitEval(e *api.Evaluation) {
	s.emit(api.TopicEvaluation, "EvaluationUpdated", e.ID, e.Namespace, []string{e.JobID, e.DeploymentID}, "Evaluation", e)
}

func (s *Store) emitJob(typ string, j *api.Job) {
	s.emit(api.TopicJob, typ, *j.ID, *j.Namespace, nil, "Job", j)
}

// ---- lookups -----------------------------------------------------------------

func (s *Store) jobAllocs(ns, id string) []*api.Allocation {
	var out []*api.Allocation
	for _, a := range s.allocs {
		if a.Namespace == ns && a.JobID == id {
			out = append(out, a)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CreateIndex > out[j].CreateIndex })
	return out
}

func (s *Store) jobEvals(ns, id string) []*api.Evaluation {
	var out []*api.Evaluation
	for _, e := range s.evals {
		if e.Namespace == ns && e.JobID == id {
			out = append(out, e)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CreateIndex > out[j].CreateIndex })
	return out
}

func (s *Store) node(id string) *api.Node {
	for _, n := range s.nodes {
		if n.ID == id {
			return n
		}
	}
	return nil
}

func nsMatch(want, have string) bool { return want == "*" || want == have }

// allocTerminal mirrors structs.Allocation.TerminalStatus.
func allocTerminal(a *api.Allocation) bool {
	switch a.DesiredStatus {
	case api.AllocDesiredStatusStop, api.AllocDesiredStatusEvict:
		return true
	}
	return clientTerminal(a)
}

func clientTerminal(a *api.Allocation) bool {
	switch a.ClientStatus {
	case api.AllocClientStatusComplete, api.AllocClientStatusFailed, api.AllocClientStatusLost:
		return true
	}
	return false
}

func evalTerminal(e *api.Evaluation) bool {
	switch e.Status {
	case api.EvalStatusComplete, api.EvalStatusFailed, api.EvalStatusCancelled:
		return true
	}
	return false
}

// jobStatus mirrors the state store's getJobStatus.
func (s *Store) jobStatus(j *api.Job) string {
	if j.Periodic != nil || (j.ParameterizedJob != nil && !j.Dispatched) || *j.Type == api.JobTypeSystem {
		if j.Stop != nil && *j.Stop {
			return "dead"
		}
		return "running"
	}
	hasAlloc := false
	for _, a := range s.jobAllocs(*j.Namespace, *j.ID) {
		hasAlloc = true
		if !allocTerminal(a) {
			return "running"
		}
	}
	hasEval := false
	for _, e := range s.jobEvals(*j.Namespace, *j.ID) {
		hasEval = true
		if !evalTerminal(e) {
			return "pending"
		}
	}
	if hasEval || hasAlloc {
		return "dead"
	}
	return "pending"
}

// refreshJobStatus recomputes a job's status after its allocs or evals
// changed and, when it moved, writes the job in the current index with an
// event of the given type (real Nomad names job events after the raft
// message that touched the jobs table).
func (s *Store) refreshJobStatus(ns, id, eventType string) {
	j := s.jobs[jobKey{ns, id}]
	if j == nil {
		return
	}
	st := s.jobStatus(j)
	if j.Status != nil && *j.Status == st {
		return
	}
	j.Status = ptr(st)
	j.ModifyIndex = ptr(s.cur)
	s.touch(tblJobs)
	s.emitJob(eventType, j)
}

func ptr[T any](v T) *T { return &v }

// gcPurged removes the allocations and evaluations of purged jobs once all
// their allocations are client-terminal (what real Nomad's GC eventually does).
func (s *Store) gcPurged() {
	for k := range s.purged {
		if s.jobs[k] != nil {
			delete(s.purged, k)
			continue
		}
		allocs := s.jobAllocs(k.ns, k.id)
		done := true
		for _, a := range allocs {
			if !clientTerminal(a) {
				done = false
			}
		}
		if !done {
			continue
		}
		s.nextIndex()
		for _, a := range allocs {
			s.releasePorts(a)
			delete(s.allocs, a.ID)
			id := a.ID
			if s.gcAlloc != nil {
				s.defer_(func() { s.gcAlloc(id) })
			}
		}
		for _, e := range s.jobEvals(k.ns, k.id) {
			delete(s.evals, e.ID)
		}
		s.touch(tblAllocs)
		s.touch(tblEvals)
		delete(s.purged, k)
	}
}

// ---- client updates (called by the allocation runner) ----------------------

// clientUpdate applies fn to the allocation's task states and recomputes the
// client status like the Nomad client's alloc runner does.
func (s *Store) clientUpdate(allocID string, fn func(a *api.Allocation)) {
	s.mu.Lock()
	defer s.unlockCommit()
	a := s.allocs[allocID]
	if a == nil {
		return
	}
	s.nextIndex()
	wasTerminal := allocTerminal(a)
	if a.TaskStates == nil {
		a.TaskStates = map[string]*api.TaskState{}
	}
	fn(a)
	st, desc := clientStatus(a.TaskStates)
	if a.ClientStatus != api.AllocClientStatusFailed && a.ClientStatus != api.AllocClientStatusComplete || st == api.AllocClientStatusFailed {
		a.ClientStatus, a.ClientDescription = st, desc
	}
	a.ModifyIndex = s.cur
	a.ModifyTime = time.Now().UnixNano()
	s.touch(tblAllocs)
	s.emitAlloc("AllocationUpdated", a)
	if !wasTerminal && allocTerminal(a) {
		s.capacityFree = true
	}
	s.refreshJobStatus(a.Namespace, a.JobID, "AllocationUpdated")
}

// clientStatus mirrors the alloc runner's getClientStatus.
func clientStatus(states map[string]*api.TaskState) (string, string) {
	var pending, running, dead, failed bool
	for _, st := range states {
		switch st.State {
		case "running":
			running = true
		case "pending":
			pending = true
		case "dead":
			if st.Failed {
				failed = true
			} else {
				dead = true
			}
		}
	}
	switch {
	case failed:
		return api.AllocClientStatusFailed, "Failed tasks"
	case running:
		return api.AllocClientStatusRunning, "Tasks are running"
	case pending:
		return api.AllocClientStatusPending, "No tasks have started"
	case dead:
		return api.AllocClientStatusComplete, "All tasks have completed"
	}
	return api.AllocClientStatusPending, "No tasks have started"
}

// ---- job summary -----------------------------------------------------------

func (s *Store) jobSummary(j *api.Job) *api.JobSummary {
	sum := &api.JobSummary{JobID: *j.ID, Namespace: *j.Namespace, Summary: map[string]api.TaskGroupSummary{},
		CreateIndex: deref(j.CreateIndex), ModifyIndex: deref(j.ModifyIndex)}
	for _, tg := range j.TaskGroups {
		sum.Summary[*tg.Name] = api.TaskGroupSummary{}
	}
	for _, a := range s.jobAllocs(*j.Namespace, *j.ID) {
		g := sum.Summary[a.TaskGroup]
		switch a.ClientStatus {
		case api.AllocClientStatusPending:
			g.Starting++
		case api.AllocClientStatusRunning:
			g.Running++
		case api.AllocClientStatusComplete:
			g.Complete++
		case api.AllocClientStatusFailed:
			g.Failed++
		case api.AllocClientStatusLost:
			g.Lost++
		}
		sum.Summary[a.TaskGroup] = g
	}
	for _, e := range s.jobEvals(*j.Namespace, *j.ID) {
		if e.Status == api.EvalStatusBlocked {
			for tg, n := range e.QueuedAllocations {
				g := sum.Summary[tg]
				g.Queued += n
				sum.Summary[tg] = g
			}
		}
	}
	return sum
}

func deref[T any](p *T) T {
	var z T
	if p == nil {
		return z
	}
	return *p
}

func (s *Store) jobStub(j *api.Job) *api.JobListStub {
	return &api.JobListStub{
		ID: *j.ID, ParentID: deref(j.ParentID), Name: deref(j.Name), Namespace: *j.Namespace,
		Datacenters: j.Datacenters, Type: deref(j.Type), Priority: deref(j.Priority),
		Periodic: j.Periodic != nil, ParameterizedJob: j.ParameterizedJob != nil,
		Stop: deref(j.Stop), Status: deref(j.Status), StatusDescription: deref(j.StatusDescription),
		JobSummary: s.jobSummary(j), CreateIndex: deref(j.CreateIndex), ModifyIndex: deref(j.ModifyIndex),
		JobModifyIndex: deref(j.JobModifyIndex), SubmitTime: deref(j.SubmitTime), Meta: j.Meta,
	}
}

func allocStub(a *api.Allocation) *api.AllocationListStub {
	st := a.Stub()
	return st
}

func hasPrefix(s, p string) bool { return p == "" || strings.HasPrefix(s, p) }
