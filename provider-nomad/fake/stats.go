// stats.go owns the client allocation endpoints other than exec and fs:
// resource usage (/stats: raw_exec tasks from /proc of their process group,
// simulated tasks with fixed plausible numbers), task restarts and signals.
package main

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/nomad/api"
)

const clockTicks = 100.0 // USER_HZ on Linux

type procSample struct {
	cpuSeconds, userSeconds, sysSeconds float64
	rss                                 uint64
}

// groupUsage sums /proc/<pid>/stat of every process in the process group.
func groupUsage(pgid int) (procSample, []int) {
	var s procSample
	var pids []int
	ents, _ := os.ReadDir("/proc")
	page := uint64(os.Getpagesize())
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		str := string(b)
		i := strings.LastIndexByte(str, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(str[i+1:])
		// f[0]=state f[1]=ppid f[2]=pgrp ... f[11]=utime f[12]=stime f[21]=rss
		if len(f) < 22 {
			continue
		}
		pg, _ := strconv.Atoi(f[2])
		if pg != pgid {
			continue
		}
		ut, _ := strconv.ParseFloat(f[11], 64)
		st, _ := strconv.ParseFloat(f[12], 64)
		rss, _ := strconv.ParseUint(f[21], 10, 64)
		s.userSeconds += ut / clockTicks
		s.sysSeconds += st / clockTicks
		s.rss += rss * page
		pids = append(pids, pid)
	}
	s.cpuSeconds = s.userSeconds + s.sysSeconds
	return s, pids
}

func (tr *taskRunner) usage(mhzPerCore float64) *api.TaskResourceUsage {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	now := time.Now()
	if tr.handle == nil || tr.state != "running" {
		return nil
	}
	ru := &api.ResourceUsage{MemoryStats: &api.MemoryStats{}, CpuStats: &api.CpuStats{}}
	if pid := tr.handle.pid(); pid > 0 {
		s, pids := groupUsage(pid)
		dt := now.Sub(tr.lastTime).Seconds()
		pct := 0.0
		if dt > 0 {
			pct = (s.cpuSeconds - tr.lastCPU) / dt * 100
		}
		if pct < 0 {
			pct = 0
		}
		tr.lastCPU, tr.lastTime = s.cpuSeconds, now
		ru.MemoryStats.RSS = s.rss
		ru.MemoryStats.Usage = s.rss
		ru.MemoryStats.MaxUsage = s.rss
		ru.MemoryStats.Measured = []string{"RSS", "Usage", "Max Usage"}
		ru.CpuStats.UserMode = s.userSeconds / max(now.Sub(tr.startAt).Seconds(), 1e-9) * 100
		ru.CpuStats.SystemMode = s.sysSeconds / max(now.Sub(tr.startAt).Seconds(), 1e-9) * 100
		ru.CpuStats.Percent = pct
		ru.CpuStats.TotalTicks = pct / 100 * mhzPerCore
		ru.CpuStats.Measured = []string{"System Mode", "User Mode", "Percent"}
		out := &api.TaskResourceUsage{ResourceUsage: ru, Timestamp: now.UnixNano(), Pids: map[string]*api.ResourceUsage{}}
		for _, p := range pids {
			out.Pids[strconv.Itoa(p)] = &api.ResourceUsage{MemoryStats: &api.MemoryStats{}, CpuStats: &api.CpuStats{}}
		}
		return out
	}
	// Simulated task: fixed plausible numbers.
	ru.MemoryStats.RSS = 12 * 1024 * 1024
	ru.MemoryStats.Cache = 1024 * 1024
	ru.MemoryStats.Usage = 14 * 1024 * 1024
	ru.MemoryStats.MaxUsage = 16 * 1024 * 1024
	ru.MemoryStats.Measured = []string{"RSS", "Cache", "Usage", "Max Usage"}
	ru.CpuStats.Percent = 1.5
	ru.CpuStats.UserMode = 1.0
	ru.CpuStats.SystemMode = 0.5
	ru.CpuStats.TotalTicks = 0.015 * mhzPerCore
	ru.CpuStats.Measured = []string{"System Mode", "User Mode", "Percent", "Total Ticks"}
	return &api.TaskResourceUsage{ResourceUsage: ru, Timestamp: now.UnixNano()}
}

func (s *Server) handleStats(w http.ResponseWriter, r *http.Request) {
	ar, err := s.lookupAlloc(r.PathValue("alloc"))
	if err != nil {
		s.writeErr(w, err)
		return
	}
	per := 1000.0
	if n := ar.info.node; n != nil && n.NodeResources.Cpu.TotalCpuCores > 0 {
		per = float64(n.NodeResources.Cpu.CpuShares) / float64(n.NodeResources.Cpu.TotalCpuCores)
	}
	out := &api.AllocResourceUsage{
		ResourceUsage: &api.ResourceUsage{MemoryStats: &api.MemoryStats{}, CpuStats: &api.CpuStats{}},
		Tasks:         map[string]*api.TaskResourceUsage{},
		Timestamp:     time.Now().UnixNano(),
	}
	for _, tr := range ar.tasks {
		u := tr.usage(per)
		if u == nil {
			continue
		}
		out.Tasks[tr.task.Name] = u
		a, b := out.ResourceUsage, u.ResourceUsage
		a.MemoryStats.RSS += b.MemoryStats.RSS
		a.MemoryStats.Cache += b.MemoryStats.Cache
		a.MemoryStats.Usage += b.MemoryStats.Usage
		a.MemoryStats.MaxUsage += b.MemoryStats.MaxUsage
		a.MemoryStats.Measured = b.MemoryStats.Measured
		a.CpuStats.Percent += b.CpuStats.Percent
		a.CpuStats.UserMode += b.CpuStats.UserMode
		a.CpuStats.SystemMode += b.CpuStats.SystemMode
		a.CpuStats.TotalTicks += b.CpuStats.TotalTicks
		a.CpuStats.Measured = b.CpuStats.Measured
	}
	s.writeJSON(w, 0, out)
}

func (s *Server) handleRestart(w http.ResponseWriter, r *http.Request) {
	ar, err := s.lookupAlloc(r.PathValue("alloc"))
	if err != nil {
		s.writeErr(w, err)
		return
	}
	var req api.AllocationRestartRequest
	_ = json.NewDecoder(r.Body).Decode(&req)
	if req.TaskName != "" {
		tr := ar.byName[req.TaskName]
		if tr == nil {
			s.writeErr(w, errf(400, "unknown task name %q", req.TaskName))
			return
		}
		if err := tr.restart("User requested task to restart"); err != nil {
			s.writeErr(w, err)
			return
		}
	} else {
		n := 0
		for _, tr := range ar.tasks {
			if st, _ := tr.snapshot(); st == "running" {
				if req.AllTasks || tr.hook == "" || tr.sidecar {
					if tr.restart("User requested running tasks to restart") == nil {
						n++
					}
				}
			}
		}
		if n == 0 {
			s.writeErr(w, errf(400, "Task not running"))
			return
		}
	}
	s.writeJSON(w, 0, struct{}{})
}

func (s *Server) handleSignal(w http.ResponseWriter, r *http.Request) {
	ar, err := s.lookupAlloc(r.PathValue("alloc"))
	if err != nil {
		s.writeErr(w, err)
		return
	}
	var req api.AllocSignalRequest
	_ = json.NewDecoder(r.Body).Decode(&req)
	name := strings.ToUpper(req.Signal)
	if name == "" {
		name = "SIGKILL"
	}
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	sig, ok := signals[name]
	if !ok {
		s.writeErr(w, errf(400, "unknown signal %q", req.Signal))
		return
	}
	n := 0
	for _, tr := range ar.tasks {
		if req.Task != "" && tr.task.Name != req.Task {
			continue
		}
		h, _, _ := tr.currentHandle()
		if h == nil {
			continue
		}
		ev := newEvent(api.TaskSignaling, "Task being sent a signal")
		ev.TaskSignal = name
		tr.update("", ev)
		_ = h.signal(sig)
		n++
	}
	if n == 0 {
		s.writeErr(w, errf(400, "Task not running"))
		return
	}
	s.writeJSON(w, 0, struct{}{})
}
