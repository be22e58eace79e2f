// events.go owns the event stream: a ring buffer of recent event batches
// (one batch per raft index, as real Nomad's event broker keeps) and the
// GET /v1/event/stream handler (ndjson, one flushed line per index, topic
// and namespace filtering, replay from ?index=, heartbeat "{}" lines).
package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/nomad/api"
)

// wireEvent is structs.Event as the agent marshals it. api.Event has the
// same fields except Namespace, which real Nomad sends too.
type wireEvent struct {
	Topic      api.Topic
	Type       string
	Key        string
	Namespace  string
	FilterKeys []string
	Index      uint64
	Payload    json.RawMessage
}

type eventBatch struct {
	index  uint64
	events []*wireEvent
}

type eventBuffer struct {
	max     int
	batches []eventBatch
}

func newEventBuffer(max int) *eventBuffer { return &eventBuffer{max: max} }

func (b *eventBuffer) append(index uint64, evs []*wireEvent) {
	if n := len(b.batches); n > 0 && b.batches[n-1].index == index {
		b.batches[n-1].events = append(b.batches[n-1].events, evs...)
		return
	}
	b.batches = append(b.batches, eventBatch{index: index, events: evs})
	if len(b.batches) > b.max*2 {
		b.batches = append([]eventBatch(nil), b.batches[len(b.batches)-b.max:]...)
	}
}

// since returns the batches with index > after (within the buffer window).
func (b *eventBuffer) since(after uint64) []eventBatch {
	start := len(b.batches) - b.max
	if start < 0 {
		start = 0
	}
	win := b.batches[start:]
	i := sort.Search(len(win), func(i int) bool { return win[i].index > after })
	return win[i:]
}

type topicFilter map[api.Topic][]string

func parseTopics(vals []string) (topicFilter, error) {
	f := topicFilter{}
	if len(vals) == 0 {
		f[api.TopicAll] = []string{"*"}
		return f, nil
	}
	for _, v := range vals {
		t, k, ok := strings.Cut(v, ":")
		if !ok {
			k = "*"
		}
		if t == "" {
			return nil, errf(400, "Invalid topic format %q", v)
		}
		f[api.Topic(t)] = append(f[api.Topic(t)], k)
	}
	return f, nil
}

func (f topicFilter) match(e *wireEvent) bool {
	keys := append(append([]string(nil), f[e.Topic]...), f[api.TopicAll]...)
	for _, k := range keys {
		if k == "*" || k == e.Key {
			return true
		}
		for _, fk := range e.FilterKeys {
			if fk == k {
				return true
			}
		}
	}
	return false
}

func (s *Server) handleEventStream(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	topics, err := parseTopics(q["topic"])
	if err != nil {
		s.writeErr(w, err)
		return
	}
	ns := q.Get("namespace")
	if ns == "" {
		ns = "default"
	}
	var after uint64
	if v := q.Get("index"); v != "" {
		after, err = parseUint(v)
		if err != nil {
			s.writeErr(w, errf(400, "Unable to parse index: %v", err))
			return
		}
	}
	st := s.store
	st.mu.Lock()
	if after == 0 {
		// index 0 means "from now on", like the event broker's head.
		after = st.index
	}
	st.mu.Unlock()

	fl, _ := w.(http.Flusher)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	if fl != nil {
		fl.Flush()
	}
	hb := time.NewTicker(s.cfg.Heartbeat)
	defer hb.Stop()
	ctx := r.Context()
	for {
		st.mu.Lock()
		batches := st.events.since(after)
		ch := st.changed
		var buf bytes.Buffer
		for _, b := range batches {
			var sel []*wireEvent
			for _, e := range b.events {
				if e.Namespace != "" && ns != "*" && e.Namespace != ns {
					continue
				}
				if topics.match(e) {
					sel = append(sel, e)
				}
			}
			after = b.index
			if len(sel) == 0 {
				continue
			}
			line, _ := json.Marshal(struct {
				Index  uint64
				Events []*wireEvent
			}{b.index, sel})
			buf.Write(line)
			buf.WriteByte('\n')
		}
		st.mu.Unlock()
		if buf.Len() > 0 {
			if _, err := w.Write(buf.Bytes()); err != nil {
				return
			}
			if fl != nil {
				fl.Flush()
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-s.done:
			return
		case <-ch:
		case <-hb.C:
			if _, err := w.Write([]byte("{}\n")); err != nil {
				return
			}
			if fl != nil {
				fl.Flush()
			}
		}
	}
}
