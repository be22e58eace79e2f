// blocking.go owns blocking queries: ?index=N&wait=D blocks until the index
// of the state a read depends on is > N or the wait (default and cap 5m,
// plus up to wait/16 jitter like Nomad) elapses; every response carries
// X-Nomad-Index, X-Nomad-KnownLeader and X-Nomad-LastContact.
package main

import (
	"math/rand"
	"net/http"
	"strconv"
	"time"
)

const maxQueryTime = 300 * time.Second

func parseUint(s string) (uint64, error) { return strconv.ParseUint(s, 10, 64) }

func parseWait(s string) (time.Duration, error) {
	if s == "" {
		return maxQueryTime, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		// Be lenient with plain integers (seconds).
		n, err2 := strconv.Atoi(s)
		if err2 != nil {
			return 0, err
		}
		d = time.Duration(n) * time.Second
	}
	if d > maxQueryTime || d <= 0 {
		d = maxQueryTime
	}
	return d, nil
}

// blockingRead serves a read endpoint. fn runs with the store locked and
// returns the index of what it read and the value to marshal (or an error).
func (s *Server) blockingRead(w http.ResponseWriter, r *http.Request, fn func() (uint64, any, error)) {
	q := r.URL.Query()
	var minIndex uint64
	if v := q.Get("index"); v != "" {
		var err error
		if minIndex, err = parseUint(v); err != nil {
			s.writeErr(w, errf(400, "Invalid index: %v", err))
			return
		}
	}
	wait, err := parseWait(q.Get("wait"))
	if err != nil {
		s.writeErr(w, errf(400, "Invalid wait time"))
		return
	}
	var deadline <-chan time.Time
	if minIndex > 0 {
		wait += time.Duration(rand.Int63n(int64(wait)/16 + 1))
		t := time.NewTimer(wait)
		defer t.Stop()
		deadline = t.C
	}
	for {
		st := s.store
		st.mu.Lock()
		idx, val, ferr := fn()
		var body []byte
		if ferr == nil {
			body, ferr = marshal(val)
		}
		ch := st.changed
		st.mu.Unlock()
		if idx == 0 {
			idx = 1
		}
		if minIndex == 0 || idx > minIndex {
			s.setMeta(w, idx)
			if ferr != nil {
				s.writeErr(w, ferr)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(body)
			return
		}
		select {
		case <-ch:
		case <-deadline:
			minIndex = 0
		case <-r.Context().Done():
			return
		case <-s.done:
			minIndex = 0
		}
	}
}

func (s *Server) setMeta(w http.ResponseWriter, idx uint64) {
	w.Header().Set("X-Nomad-Index", strconv.FormatUint(idx, 10))
	w.Header().Set("X-Nomad-KnownLeader", "true")
	w.Header().Set("X-Nomad-LastContact", "0")
}
