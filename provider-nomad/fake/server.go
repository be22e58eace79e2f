// server.go owns the HTTP surface: the route table (Go 1.22 ServeMux
// patterns), ACL token and region checks, JSON helpers, and the handlers for
// jobs, evaluations, allocations, nodes, agent and status endpoints. The
// client endpoints live in logs.go, exec.go and stats.go, the event stream
// in events.go.
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/nomad/api"
)

// Server is the fake Nomad agent (server + client in one process).
type Server struct {
	cfg     Config
	addr    string
	store   *Store
	client  *Client
	mux     *http.ServeMux
	done    chan struct{}
	dataDir string
}

// NewServer builds the state (nodes registered) and the routes. addr is the
// bound host:port, advertised as every node's HTTPAddr.
func NewServer(cfg Config, addr string) (*Server, error) {
	dataDir := cfg.DataDir
	if dataDir == "" {
		d, err := os.MkdirTemp("", "fake-nomad-")
		if err != nil {
			return nil, err
		}
		dataDir = d
	}
	if err := os.MkdirAll(dataDir, 0o777); err != nil {
		return nil, err
	}
	if cfg.Nodes < 1 {
		cfg.Nodes = 1
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = 10 * time.Second
	}
	s := &Server{cfg: cfg, addr: addr, store: newStore(), mux: http.NewServeMux(), done: make(chan struct{}), dataDir: dataDir}
	s.client = newClient(cfg, s.store, dataDir)
	s.registerNodes()
	s.routes()
	return s, nil
}

// Shutdown kills all tasks and ends streaming responses.
func (s *Server) Shutdown() {
	select {
	case <-s.done:
	default:
		close(s.done)
	}
	s.client.Shutdown()
}

func (s *Server) registerNodes() {
	st := s.store
	st.mu.Lock()
	defer st.unlockCommit()
	cores := s.cfg.NodeCores
	if cores <= 0 {
		cores = s.cfg.NodeCPUMHz / 1000
		if cores < 1 {
			cores = 1
		}
	}
	host, _ := os.Hostname()
	for i := 0; i < s.cfg.Nodes; i++ {
		st.nextIndex()
		now := time.Now()
		drivers := map[string]*api.DriverInfo{}
		attrs := map[string]string{
			"kernel.name": runtime.GOOS, "os.name": "linux", "cpu.arch": runtime.GOARCH,
			"cpu.numcores": strconv.Itoa(cores), "cpu.totalcompute": strconv.Itoa(s.cfg.NodeCPUMHz),
			"cpu.frequency":     strconv.Itoa(s.cfg.NodeCPUMHz / cores),
			"memory.totalbytes": strconv.FormatInt(int64(s.cfg.NodeMemoryMB)*1024*1024, 10),
			"nomad.version":     s.cfg.Version, "nomad.revision": "fake",
			"unique.hostname": host, "unique.network.ip-address": s.cfg.AllocIP,
			"nomad.advertise.address": s.addr,
		}
		for _, d := range driverNames {
			drivers[d] = &api.DriverInfo{Attributes: map[string]string{}, Detected: true, Healthy: true,
				HealthDescription: "Healthy", UpdateTime: now}
			attrs["driver."+d] = "1"
		}
		n := &api.Node{
			ID: uuid(), Datacenter: s.cfg.Datacenter, Name: fmt.Sprintf("fake-node-%d", i+1),
			HTTPAddr: s.addr, Attributes: attrs,
			NodeResources: &api.NodeResources{
				Cpu:            api.NodeCpuResources{CpuShares: int64(s.cfg.NodeCPUMHz), TotalCpuCores: uint16(cores)},
				Memory:         api.NodeMemoryResources{MemoryMB: int64(s.cfg.NodeMemoryMB)},
				Disk:           api.NodeDiskResources{DiskMB: 100 * 1024},
				Networks:       []*api.NetworkResource{{Mode: "host", Device: "lo", IP: s.cfg.AllocIP, CIDR: s.cfg.AllocIP + "/32"}},
				MinDynamicPort: minDynamicPort, MaxDynamicPort: maxDynamicPort,
			},
			ReservedResources:     &api.NodeReservedResources{},
			Resources:             &api.Resources{CPU: ptr(s.cfg.NodeCPUMHz), MemoryMB: ptr(s.cfg.NodeMemoryMB), DiskMB: ptr(100 * 1024)},
			Reserved:              &api.Resources{CPU: ptr(0), MemoryMB: ptr(0), DiskMB: ptr(0)},
			Links:                 map[string]string{},
			Meta:                  map[string]string{},
			NodePool:              s.cfg.NodePool,
			SchedulingEligibility: "eligible",
			Status:                "ready",
			StatusUpdatedAt:       now.Unix(),
			Drivers:               drivers,
			Events:                []*api.NodeEvent{{Message: "Node registered", Subsystem: "Cluster", Timestamp: now, CreateIndex: st.cur}},
			CreateIndex:           st.cur, ModifyIndex: st.cur,
		}
		for c := 0; c < cores; c++ {
			n.NodeResources.Cpu.ReservableCpuCores = append(n.NodeResources.Cpu.ReservableCpuCores, uint16(c))
		}
		st.nodes = append(st.nodes, n)
		st.touch(tblNodes)
		st.emit(api.TopicNode, "NodeRegistration", n.ID, "", []string{}, "Node", n)
	}
}

func (s *Server) routes() {
	m := s.mux
	m.HandleFunc("GET /v1/jobs", s.listJobs)
	m.HandleFunc("PUT /v1/jobs", s.registerJob)
	m.HandleFunc("POST /v1/jobs", s.registerJob)
	m.HandleFunc("GET /v1/job/{id}", s.getJob)
	m.HandleFunc("PUT /v1/job/{id}", s.registerJob)
	m.HandleFunc("POST /v1/job/{id}", s.registerJob)
	m.HandleFunc("DELETE /v1/job/{id}", s.deregisterJob)
	m.HandleFunc("GET /v1/job/{id}/allocations", s.jobAllocations)
	m.HandleFunc("GET /v1/job/{id}/evaluations", s.jobEvaluations)
	m.HandleFunc("GET /v1/job/{id}/summary", s.jobSummary)
	m.HandleFunc("GET /v1/evaluations", s.listEvals)
	m.HandleFunc("GET /v1/evaluation/{id}", s.getEval)
	m.HandleFunc("GET /v1/evaluation/{id}/allocations", s.evalAllocations)
	m.HandleFunc("GET /v1/allocations", s.listAllocs)
	m.HandleFunc("GET /v1/allocation/{id}", s.getAlloc)
	m.HandleFunc("PUT /v1/allocation/{id}/stop", s.stopAlloc)
	m.HandleFunc("POST /v1/allocation/{id}/stop", s.stopAlloc)
	m.HandleFunc("GET /v1/nodes", s.listNodes)
	m.HandleFunc("GET /v1/node/{id}", s.getNode)
	m.HandleFunc("GET /v1/node/{id}/allocations", s.nodeAllocations)
	m.HandleFunc("GET /v1/agent/self", s.agentSelf)
	m.HandleFunc("GET /v1/agent/health", s.agentHealth)
	m.HandleFunc("GET /v1/agent/members", s.agentMembers)
	m.HandleFunc("GET /v1/status/leader", s.statusLeader)
	m.HandleFunc("GET /v1/status/peers", s.statusPeers)
	m.HandleFunc("GET /v1/regions", s.regions)
	m.HandleFunc("GET /v1/namespaces", s.namespaces)
	m.HandleFunc("GET /v1/event/stream", s.handleEventStream)
	m.HandleFunc("GET /v1/client/fs/logs/{alloc}", s.handleLogs)
	m.HandleFunc("GET /v1/client/fs/cat/{alloc}", s.handleCat)
	m.HandleFunc("GET /v1/client/fs/ls/{alloc}", s.handleLs)
	m.HandleFunc("GET /v1/client/fs/stat/{alloc}", s.handleStat)
	m.HandleFunc("GET /v1/client/allocation/{alloc}/exec", s.handleExec)
	m.HandleFunc("GET /v1/client/allocation/{alloc}/stats", s.handleStats)
	m.HandleFunc("PUT /v1/client/allocation/{alloc}/restart", s.handleRestart)
	m.HandleFunc("POST /v1/client/allocation/{alloc}/restart", s.handleRestart)
	m.HandleFunc("PUT /v1/client/allocation/{alloc}/signal", s.handleSignal)
	m.HandleFunc("POST /v1/client/allocation/{alloc}/signal", s.handleSignal)
	m.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "Invalid URL", http.StatusNotFound)
	})
}

type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(c int) { w.code = c; w.ResponseWriter.WriteHeader(c) }
func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Hijack lets the WebSocket upgrader take over the connection.
func (w *statusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if h, ok := w.ResponseWriter.(http.Hijacker); ok {
		w.code = http.StatusSwitchingProtocols
		return h.Hijack()
	}
	return nil, nil, errors.New("hijacking not supported")
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	sw := &statusWriter{ResponseWriter: w, code: 200}
	defer func() {
		if !s.cfg.Quiet {
			fmt.Fprintf(os.Stderr, "fake-nomad: %s %s %d %v\n", r.Method, r.URL.RequestURI(), sw.code, time.Since(start).Round(time.Millisecond))
		}
	}()
	if s.cfg.Token != "" {
		tok := r.Header.Get("X-Nomad-Token")
		if tok == "" {
			if h := r.Header.Get("Authorization"); strings.HasPrefix(h, "Bearer ") {
				tok = strings.TrimPrefix(h, "Bearer ")
			}
		}
		if tok != s.cfg.Token {
			http.Error(sw, "Permission denied", http.StatusForbidden)
			return
		}
	}
	if rg := r.URL.Query().Get("region"); rg != "" && rg != s.cfg.Region {
		http.Error(sw, "No path to region", http.StatusInternalServerError)
		return
	}
	s.mux.ServeHTTP(sw, r)
}

// ---- helpers -------------------------------------------------------------------

func marshal(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

func (s *Server) writeJSON(w http.ResponseWriter, idx uint64, v any) {
	b, err := marshal(v)
	if err != nil {
		s.writeErr(w, err)
		return
	}
	if idx > 0 {
		s.setMeta(w, idx)
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
}

func (s *Server) writeErr(w http.ResponseWriter, err error) {
	code := http.StatusInternalServerError
	var he *httpError
	if errors.As(err, &he) {
		code = he.code
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(code)
	_, _ = fmt.Fprint(w, err.Error())
}

func namespace(r *http.Request) string {
	if ns := r.URL.Query().Get("namespace"); ns != "" {
		return ns
	}
	if ns := r.Header.Get("X-Nomad-Namespace"); ns != "" {
		return ns
	}
	return "default"
}

func boolParam(r *http.Request, k string) bool {
	b, _ := strconv.ParseBool(r.URL.Query().Get(k))
	return b
}

// ---- jobs ------------------------------------------------------------------------

type jobRegisterRequest struct {
	Job            *api.Job
	EnforceIndex   bool
	JobModifyIndex uint64
	PolicyOverride bool
	PreserveCounts bool
	EvalPriority   int
}

func (s *Server) registerJob(w http.ResponseWriter, r *http.Request) {
	var req jobRegisterRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		s.writeErr(w, errf(400, "%v", err))
		return
	}
	job := req.Job
	if job == nil {
		s.writeErr(w, errf(400, "Job must be specified"))
		return
	}
	if id := r.PathValue("id"); id != "" && (job.ID == nil || *job.ID != id) {
		s.writeErr(w, errf(400, "Job ID does not match name"))
		return
	}
	if job.Namespace == nil || *job.Namespace == "" {
		job.Namespace = ptr(namespace(r))
	}
	if job.Region == nil || *job.Region == "" {
		job.Region = ptr(s.cfg.Region)
	}
	job.Canonicalize()
	if len(job.Datacenters) == 0 {
		job.Datacenters = []string{"*"}
	}
	if job.NodePool == nil || *job.NodePool == "" {
		job.NodePool = ptr("default")
	}
	if err := validateJob(job); err != nil {
		s.writeErr(w, err)
		return
	}
	if req.PreserveCounts {
		s.store.mu.Lock()
		if old := s.store.jobs[jobKey{*job.Namespace, *job.ID}]; old != nil {
			for _, tg := range job.TaskGroups {
				for _, otg := range old.TaskGroups {
					if *otg.Name == *tg.Name {
						tg.Count = ptr(deref(otg.Count))
					}
				}
			}
		}
		s.store.mu.Unlock()
	}
	reply, err := s.store.registerJob(job, req.EnforceIndex, req.JobModifyIndex)
	if err != nil {
		s.writeErr(w, err)
		return
	}
	s.writeJSON(w, reply.Index, reply)
}

func (s *Server) listJobs(w http.ResponseWriter, r *http.Request) {
	ns, prefix := namespace(r), r.URL.Query().Get("prefix")
	withMeta := boolParam(r, "meta")
	s.blockingRead(w, r, func() (uint64, any, error) {
		out := []*api.JobListStub{}
		for _, j := range s.store.jobs {
			if nsMatch(ns, *j.Namespace) && hasPrefix(*j.ID, prefix) {
				stub := s.store.jobStub(j)
				if !withMeta {
					stub.Meta = nil
				}
				out = append(out, stub)
			}
		}
		sort.Slice(out, func(i, j int) bool {
			if out[i].Namespace != out[j].Namespace {
				return out[i].Namespace < out[j].Namespace
			}
			return out[i].ID < out[j].ID
		})
		return s.store.tableIndex(tblJobs, tblAllocs), out, nil
	})
}

func (s *Server) getJob(w http.ResponseWriter, r *http.Request) {
	ns, id := namespace(r), r.PathValue("id")
	s.blockingRead(w, r, func() (uint64, any, error) {
		j := s.store.jobs[jobKey{ns, id}]
		if j == nil {
			return s.store.tableIndex(tblJobs), nil, errf(404, "job not found")
		}
		return deref(j.ModifyIndex), j, nil
	})
}

func (s *Server) deregisterJob(w http.ResponseWriter, r *http.Request) {
	reply, err := s.store.deregisterJob(namespace(r), r.PathValue("id"), boolParam(r, "purge"))
	if err != nil {
		s.writeErr(w, err)
		return
	}
	s.writeJSON(w, reply.Index, reply)
}

func (s *Server) jobAllocations(w http.ResponseWriter, r *http.Request) {
	ns, id, all := namespace(r), r.PathValue("id"), boolParam(r, "all")
	s.blockingRead(w, r, func() (uint64, any, error) {
		j := s.store.jobs[jobKey{ns, id}]
		out := []*api.AllocationListStub{}
		for _, a := range s.store.jobAllocs(ns, id) {
			if !all && j != nil && a.Job != nil && deref(a.Job.CreateIndex) != deref(j.CreateIndex) {
				continue
			}
			out = append(out, allocStub(a))
		}
		return s.store.tableIndex(tblAllocs), out, nil
	})
}

func (s *Server) jobEvaluations(w http.ResponseWriter, r *http.Request) {
	ns, id := namespace(r), r.PathValue("id")
	s.blockingRead(w, r, func() (uint64, any, error) {
		out := s.store.jobEvals(ns, id)
		if out == nil {
			out = []*api.Evaluation{}
		}
		return s.store.tableIndex(tblEvals), out, nil
	})
}

func (s *Server) jobSummary(w http.ResponseWriter, r *http.Request) {
	ns, id := namespace(r), r.PathValue("id")
	s.blockingRead(w, r, func() (uint64, any, error) {
		j := s.store.jobs[jobKey{ns, id}]
		if j == nil {
			return s.store.tableIndex(tblJobs), nil, errf(404, "job not found")
		}
		return s.store.tableIndex(tblJobs, tblAllocs), s.store.jobSummary(j), nil
	})
}

// ---- evaluations -------------------------------------------------------------------

func (s *Server) listEvals(w http.ResponseWriter, r *http.Request) {
	ns, prefix := namespace(r), r.URL.Query().Get("prefix")
	status, job := r.URL.Query().Get("status"), r.URL.Query().Get("job")
	s.blockingRead(w, r, func() (uint64, any, error) {
		out := []*api.Evaluation{}
		for _, e := range s.store.evals {
			if nsMatch(ns, e.Namespace) && hasPrefix(e.ID, prefix) && (status == "" || e.Status == status) && (job == "" || e.JobID == job) {
				out = append(out, e)
			}
		}
		sort.Slice(out, func(i, j int) bool { return out[i].CreateIndex > out[j].CreateIndex })
		return s.store.tableIndex(tblEvals), out, nil
	})
}

func (s *Server) getEval(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	s.blockingRead(w, r, func() (uint64, any, error) {
		e := s.store.evals[id]
		if e == nil {
			return s.store.tableIndex(tblEvals), nil, errf(404, "eval not found")
		}
		return e.ModifyIndex, e, nil
	})
}

func (s *Server) evalAllocations(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	s.blockingRead(w, r, func() (uint64, any, error) {
		out := []*api.AllocationListStub{}
		for _, a := range s.store.allocs {
			if a.EvalID == id {
				out = append(out, allocStub(a))
			}
		}
		return s.store.tableIndex(tblAllocs), out, nil
	})
}

// ---- allocations -------------------------------------------------------------------

func (s *Server) listAllocs(w http.ResponseWriter, r *http.Request) {
	ns, prefix := namespace(r), r.URL.Query().Get("prefix")
	resources := boolParam(r, "resources")
	noStates := r.URL.Query().Get("task_states") == "false"
	s.blockingRead(w, r, func() (uint64, any, error) {
		out := []*api.AllocationListStub{}
		for _, a := range s.store.allocs {
			if nsMatch(ns, a.Namespace) && hasPrefix(a.ID, prefix) {
				st := allocStub(a)
				if resources {
					st.AllocatedResources = a.AllocatedResources
				}
				if noStates {
					st.TaskStates = nil
				}
				out = append(out, st)
			}
		}
		sort.Slice(out, func(i, j int) bool { return out[i].CreateIndex > out[j].CreateIndex })
		return s.store.tableIndex(tblAllocs), out, nil
	})
}

func (s *Server) getAlloc(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	s.blockingRead(w, r, func() (uint64, any, error) {
		a := s.store.allocs[id]
		if a == nil {
			return s.store.tableIndex(tblAllocs), nil, errf(404, "alloc not found")
		}
		return a.ModifyIndex, a, nil
	})
}

func (s *Server) stopAlloc(w http.ResponseWriter, r *http.Request) {
	evalID, idx, err := s.store.stopAllocation(r.PathValue("id"))
	if err != nil {
		s.writeErr(w, err)
		return
	}
	s.writeJSON(w, idx, map[string]any{"EvalID": evalID, "Index": idx})
}

// ---- nodes ---------------------------------------------------------------------------

func nodeStub(n *api.Node, resources bool) *api.NodeListStub {
	st := &api.NodeListStub{
		Address: n.Attributes["unique.network.ip-address"], ID: n.ID, Datacenter: n.Datacenter, Name: n.Name,
		NodeClass: n.NodeClass, NodePool: n.NodePool, Version: n.Attributes["nomad.version"], Drain: n.Drain,
		SchedulingEligibility: n.SchedulingEligibility, Status: n.Status, StatusDescription: n.StatusDescription,
		Drivers: n.Drivers, CreateIndex: n.CreateIndex, ModifyIndex: n.ModifyIndex,
	}
	if resources {
		st.NodeResources = n.NodeResources
		st.ReservedResources = n.ReservedResources
	}
	return st
}

func (s *Server) listNodes(w http.ResponseWriter, r *http.Request) {
	prefix, resources := r.URL.Query().Get("prefix"), boolParam(r, "resources")
	s.blockingRead(w, r, func() (uint64, any, error) {
		out := []*api.NodeListStub{}
		for _, n := range s.store.nodes {
			if hasPrefix(n.ID, prefix) {
				out = append(out, nodeStub(n, resources))
			}
		}
		return s.store.tableIndex(tblNodes), out, nil
	})
}

func (s *Server) getNode(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	s.blockingRead(w, r, func() (uint64, any, error) {
		n := s.store.node(id)
		if n == nil {
			// Nomad accepts a unique prefix here.
			var match []*api.Node
			for _, c := range s.store.nodes {
				if strings.HasPrefix(c.ID, id) {
					match = append(match, c)
				}
			}
			if len(match) != 1 {
				return s.store.tableIndex(tblNodes), nil, errf(404, "node not found")
			}
			n = match[0]
		}
		return n.ModifyIndex, n, nil
	})
}

func (s *Server) nodeAllocations(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	s.blockingRead(w, r, func() (uint64, any, error) {
		out := []*api.Allocation{}
		for _, a := range s.store.allocs {
			if a.NodeID == id {
				out = append(out, a)
			}
		}
		sort.Slice(out, func(i, j int) bool { return out[i].CreateIndex > out[j].CreateIndex })
		return s.store.tableIndex(tblAllocs), out, nil
	})
}

// ---- agent / status --------------------------------------------------------------------

func (s *Server) member() api.AgentMember {
	host, _, _ := net.SplitHostPort(s.addr)
	return api.AgentMember{
		Name: "fake-nomad." + s.cfg.Region, Addr: host, Port: 4648, Status: "alive",
		Tags: map[string]string{"region": s.cfg.Region, "dc": s.cfg.Datacenter, "role": "nomad",
			"build": s.cfg.Version, "port": "4647", "expect": "1", "bootstrap": "1", "vsn": "1", "mvn": "1", "raft_vsn": "3", "rpc_addr": host},
		ProtocolMin: 1, ProtocolMax: 5, ProtocolCur: 2, DelegateMin: 2, DelegateMax: 5, DelegateCur: 4,
	}
}

func (s *Server) agentSelf(w http.ResponseWriter, r *http.Request) {
	self := api.AgentSelf{
		Config: map[string]any{
			"Region": s.cfg.Region, "Datacenter": s.cfg.Datacenter, "NodeName": "fake-nomad",
			"DataDir": s.dataDir, "BindAddr": strings.Split(s.addr, ":")[0],
			"Version": map[string]any{"Version": s.cfg.Version, "Revision": "fake", "VersionPrerelease": "", "VersionMetadata": ""},
			"Server":  map[string]any{"Enabled": true, "BootstrapExpect": 1},
			"Client":  map[string]any{"Enabled": true, "NodePool": s.cfg.NodePool},
			"ACL":     map[string]any{"Enabled": s.cfg.Token != ""},
		},
		Member: s.member(),
		Stats: map[string]map[string]string{
			"nomad":  {"server": "true", "leader": "true", "known_regions": "1", "bootstrap": "true"},
			"client": {"known_servers": "127.0.0.1:4647", "num_allocations": strconv.Itoa(len(s.client.runners))},
		},
	}
	s.writeJSON(w, 0, self)
}

func (s *Server) agentHealth(w http.ResponseWriter, r *http.Request) {
	s.writeJSON(w, 0, map[string]any{
		"client": map[string]any{"ok": true, "message": "ok"},
		"server": map[string]any{"ok": true, "message": "ok"},
	})
}

func (s *Server) agentMembers(w http.ResponseWriter, r *http.Request) {
	m := s.member()
	s.writeJSON(w, 0, map[string]any{"ServerName": m.Name, "ServerRegion": s.cfg.Region, "ServerDC": s.cfg.Datacenter, "Members": []api.AgentMember{m}})
}

func (s *Server) statusLeader(w http.ResponseWriter, r *http.Request) {
	s.writeJSON(w, 0, "127.0.0.1:4647")
}

func (s *Server) statusPeers(w http.ResponseWriter, r *http.Request) {
	s.writeJSON(w, 0, []string{"127.0.0.1:4647"})
}

func (s *Server) regions(w http.ResponseWriter, r *http.Request) {
	s.writeJSON(w, 0, []string{s.cfg.Region})
}

func (s *Server) namespaces(w http.ResponseWriter, r *http.Request) {
	s.store.mu.Lock()
	seen := map[string]bool{"default": true}
	for k := range s.store.jobs {
		seen[k.ns] = true
	}
	idx := s.store.tableIndex(tblJobs)
	s.store.mu.Unlock()
	var out []*api.Namespace
	for ns := range seen {
		desc := ""
		if ns == "default" {
			desc = "Default shared namespace"
		}
		out = append(out, &api.Namespace{Name: ns, Description: desc, CreateIndex: 1, ModifyIndex: 1})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	s.writeJSON(w, idx, out)
}
