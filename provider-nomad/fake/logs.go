// logs.go owns the client filesystem endpoints: task logs
// (/v1/client/fs/logs/{alloc}, plain bytes or ndjson api.StreamFrame with
// heartbeat frames, follow until the task is dead), and cat / ls / stat of
// files inside the allocation directory.
package main

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/nomad/api"
)

const (
	logPollInterval = 100 * time.Millisecond
	frameHeartbeat  = time.Second
	maxFrameSize    = 64 * 1024
)

// lookupAlloc returns the allocation runner, or an error like the client's.
func (s *Server) lookupAlloc(id string) (*allocRunner, error) {
	s.store.mu.Lock()
	a := s.store.allocs[id]
	s.store.mu.Unlock()
	if a == nil {
		return nil, errf(404, "unknown allocation ID")
	}
	ar := s.client.runner(id)
	if ar == nil {
		return nil, errf(404, "unknown allocation ID")
	}
	return ar, nil
}

// taskDead reports whether the task is dead for good (or the alloc is gone).
func (s *Server) taskDead(allocID, task string) bool {
	s.store.mu.Lock()
	defer s.store.mu.Unlock()
	a := s.store.allocs[allocID]
	if a == nil {
		return true
	}
	ts := a.TaskStates[task]
	if ts == nil {
		return clientTerminal(a)
	}
	return ts.State == "dead"
}

func (s *Server) handleLogs(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	ar, err := s.lookupAlloc(r.PathValue("alloc"))
	if err != nil {
		s.writeErr(w, err)
		return
	}
	task := q.Get("task")
	if task == "" {
		s.writeErr(w, errf(400, "must include task name"))
		return
	}
	if ar.byName[task] == nil {
		s.writeErr(w, errf(400, "unknown task name %q", task))
		return
	}
	typ := q.Get("type")
	if typ != "stdout" && typ != "stderr" {
		s.writeErr(w, errf(400, "must include a valid log type (stdout or stderr)"))
		return
	}
	origin := q.Get("origin")
	if origin == "" {
		origin = api.OriginStart
	}
	if origin != api.OriginStart && origin != api.OriginEnd {
		s.writeErr(w, errf(400, "origin must be start or end"))
		return
	}
	var offset int64
	if v := q.Get("offset"); v != "" {
		offset, err = strconv.ParseInt(v, 10, 64)
		if err != nil || offset < 0 {
			s.writeErr(w, errf(400, "failed to parse offset %q", v))
			return
		}
	}
	follow, _ := strconv.ParseBool(q.Get("follow"))
	plain, _ := strconv.ParseBool(q.Get("plain"))
	rel := filepath.Join("alloc", "logs", task+"."+typ+".0")
	path := filepath.Join(ar.info.dir, rel)

	if plain {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	} else {
		w.Header().Set("Content-Type", "application/json")
	}
	w.WriteHeader(http.StatusOK)
	fl, _ := w.(http.Flusher)
	flush := func() {
		if fl != nil {
			fl.Flush()
		}
	}
	flush()
	enc := json.NewEncoder(w)
	send := func(f *api.StreamFrame) error {
		if plain {
			if len(f.Data) == 0 {
				return nil
			}
			_, err := w.Write(f.Data)
			return err
		}
		return enc.Encode(f)
	}

	var pos int64 = -1
	buf := make([]byte, maxFrameSize)
	lastSend := time.Now()
	ctx := r.Context()
	for {
		dead := s.taskDead(ar.info.id, task)
		f, err := os.Open(path)
		if err == nil {
			st, _ := f.Stat()
			size := st.Size()
			if pos < 0 {
				if origin == api.OriginStart {
					pos = min(offset, size)
				} else {
					pos = max(0, size-offset)
				}
			}
			if size < pos {
				pos = 0
				if !plain {
					_ = send(&api.StreamFrame{File: rel, FileEvent: "file truncated"})
				}
			}
			for pos < size {
				n, rerr := f.ReadAt(buf[:min(int64(len(buf)), size-pos)], pos)
				if n > 0 {
					pos += int64(n)
					if err := send(&api.StreamFrame{Offset: pos, Data: append([]byte(nil), buf[:n]...), File: rel}); err != nil {
						f.Close()
						return
					}
					lastSend = time.Now()
				}
				if rerr != nil && rerr != io.EOF {
					break
				}
				if n == 0 {
					break
				}
			}
			f.Close()
			flush()
		}
		if !follow || dead {
			return
		}
		if !plain && time.Since(lastSend) >= frameHeartbeat {
			if err := send(&api.StreamFrame{}); err != nil {
				return
			}
			flush()
			lastSend = time.Now()
		}
		select {
		case <-ctx.Done():
			return
		case <-s.done:
			return
		case <-time.After(logPollInterval):
		}
	}
}

// allocPath resolves ?path= inside the allocation dir.
func (s *Server) allocPath(r *http.Request) (*allocRunner, string, string, error) {
	ar, err := s.lookupAlloc(r.PathValue("alloc"))
	if err != nil {
		return nil, "", "", err
	}
	p := r.URL.Query().Get("path")
	if p == "" {
		p = "/"
	}
	clean := filepath.Clean("/" + p)
	return ar, filepath.Join(ar.info.dir, clean), clean, nil
}

func fileInfo(name string, st os.FileInfo) *api.AllocFileInfo {
	ct := ""
	if !st.IsDir() {
		ct = "application/octet-stream"
		if strings.HasSuffix(name, ".0") || strings.HasSuffix(name, ".txt") || strings.HasSuffix(name, ".log") {
			ct = "text/plain; charset=utf-8"
		}
	}
	return &api.AllocFileInfo{Name: name, IsDir: st.IsDir(), Size: st.Size(), FileMode: st.Mode().String(), ModTime: st.ModTime(), ContentType: ct}
}

func (s *Server) handleCat(w http.ResponseWriter, r *http.Request) {
	_, full, rel, err := s.allocPath(r)
	if err != nil {
		s.writeErr(w, err)
		return
	}
	st, err := os.Stat(full)
	if err != nil {
		s.writeErr(w, errf(404, "stat %s: no such file or directory", rel))
		return
	}
	if st.IsDir() {
		s.writeErr(w, errf(400, "file %q is a directory", rel))
		return
	}
	f, err := os.Open(full)
	if err != nil {
		s.writeErr(w, err)
		return
	}
	defer f.Close()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = io.Copy(w, f)
}

func (s *Server) handleLs(w http.ResponseWriter, r *http.Request) {
	_, full, rel, err := s.allocPath(r)
	if err != nil {
		s.writeErr(w, err)
		return
	}
	ents, err := os.ReadDir(full)
	if err != nil {
		s.writeErr(w, errf(404, "open %s: no such file or directory", rel))
		return
	}
	out := []*api.AllocFileInfo{}
	for _, e := range ents {
		if st, err := e.Info(); err == nil {
			out = append(out, fileInfo(e.Name(), st))
		}
	}
	s.writeJSON(w, 0, out)
}

func (s *Server) handleStat(w http.ResponseWriter, r *http.Request) {
	_, full, rel, err := s.allocPath(r)
	if err != nil {
		s.writeErr(w, err)
		return
	}
	st, err := os.Stat(full)
	if err != nil {
		s.writeErr(w, errf(404, "stat %s: no such file or directory", rel))
		return
	}
	s.writeJSON(w, 0, fileInfo(filepath.Base(full), st))
}
