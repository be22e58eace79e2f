// StatusHub: the pod-status bookkeeping every provider needs. It keeps the last status of every
// pod, stamps each published status with a larger revision and the provider instance, and serves
// WatchPodStatus (snapshot, initial_sync_complete, then every change) to any number of watchers
// without ever blocking a publisher.
package vkprovider

import (
	"crypto/rand"
	"encoding/hex"
	"sort"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	providerv1 "github.com/vk-project/vk/sdk/go/gen/vk/provider/v1"
)

// StatusHub holds the current status of every pod and fans changes out to watchers.
// It is safe for concurrent use.
type StatusHub struct {
	mu       sync.Mutex
	instance string
	revision uint64
	pods     map[string]*providerv1.PodStatus
	watchers map[*watcher]struct{}
	closed   chan struct{} // closed by Close: every Watch returns
	once     sync.Once
}

type watcher struct {
	queue  []*providerv1.WatchPodStatusResponse
	notify chan struct{}
}

// NewStatusHub returns an empty hub with a fresh random provider instance ID.
func NewStatusHub() *StatusHub {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return &StatusHub{
		instance: hex.EncodeToString(b),
		pods:     map[string]*providerv1.PodStatus{},
		watchers: map[*watcher]struct{}{},
		closed:   make(chan struct{}),
	}
}

// Close ends every Watch call (their streams end with OK) so that a graceful stop need not wait
// for them; pass it as Options.OnShutdown. Publishing after Close is allowed.
func (h *StatusHub) Close() { h.once.Do(func() { close(h.closed) }) }

// Instance is this process's provider_instance.
func (h *StatusHub) Instance() string { return h.instance }

// Publish records st as the pod's current status (keyed by st.Uid), stamps it with the next
// revision and the instance ID, and sends it to every watcher. The caller keeps ownership of st.
func (h *StatusHub) Publish(st *providerv1.PodStatus) {
	st = proto.Clone(st).(*providerv1.PodStatus)
	h.mu.Lock()
	defer h.mu.Unlock()
	h.revision++
	st.Revision = h.revision
	st.ProviderInstance = h.instance
	h.pods[st.Uid] = st
	h.broadcast(&providerv1.WatchPodStatusResponse{
		Event: &providerv1.WatchPodStatusResponse_Status{Status: st},
	})
}

// Remove forgets a pod and sends `removed` to every watcher. It reports whether the pod was known.
func (h *StatusHub) Remove(uid string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	st, ok := h.pods[uid]
	if !ok {
		return false
	}
	delete(h.pods, uid)
	h.broadcast(&providerv1.WatchPodStatusResponse{Event: &providerv1.WatchPodStatusResponse_Removed{
		Removed: &providerv1.PodRemoved{Uid: uid, Namespace: st.Namespace, Name: st.Name},
	}})
	return true
}

// Get returns a copy of the pod's current status.
func (h *StatusHub) Get(uid string) (*providerv1.PodStatus, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	st, ok := h.pods[uid]
	if !ok {
		return nil, false
	}
	return proto.Clone(st).(*providerv1.PodStatus), true
}

// GetPodStatus answers the GetPodStatus RPC: the status, or NOT_FOUND.
func (h *StatusHub) GetPodStatus(uid string) (*providerv1.GetPodStatusResponse, error) {
	st, ok := h.Get(uid)
	if !ok {
		return nil, status.Errorf(codes.NotFound, "pod %s not found", uid)
	}
	return &providerv1.GetPodStatusResponse{Status: st}, nil
}

// List returns copies of every pod's current status, ordered by UID.
func (h *StatusHub) List() []*providerv1.PodStatus {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.snapshot()
}

func (h *StatusHub) snapshot() []*providerv1.PodStatus {
	out := make([]*providerv1.PodStatus, 0, len(h.pods))
	for _, st := range h.pods {
		out = append(out, proto.Clone(st).(*providerv1.PodStatus))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Uid < out[j].Uid })
	return out
}

func (h *StatusHub) broadcast(ev *providerv1.WatchPodStatusResponse) {
	for w := range h.watchers {
		w.queue = append(w.queue, ev)
		select {
		case w.notify <- struct{}{}:
		default:
		}
	}
}

// Watch serves one WatchPodStatus call until the client goes away: the current status of every
// pod, one initial_sync_complete, then every change in order.
func (h *StatusHub) Watch(stream grpc.ServerStreamingServer[providerv1.WatchPodStatusResponse]) error {
	w := &watcher{notify: make(chan struct{}, 1)}
	h.mu.Lock()
	snap := h.snapshot()
	for _, st := range snap {
		w.queue = append(w.queue, &providerv1.WatchPodStatusResponse{
			Event: &providerv1.WatchPodStatusResponse_Status{Status: st},
		})
	}
	w.queue = append(w.queue, &providerv1.WatchPodStatusResponse{
		Event: &providerv1.WatchPodStatusResponse_InitialSyncComplete{
			InitialSyncComplete: &providerv1.InitialSyncComplete{PodCount: uint32(len(snap))},
		},
	})
	h.watchers[w] = struct{}{}
	h.mu.Unlock()
	defer func() {
		h.mu.Lock()
		delete(h.watchers, w)
		h.mu.Unlock()
	}()
	for {
		h.mu.Lock()
		batch := w.queue
		w.queue = nil
		h.mu.Unlock()
		for _, ev := range batch {
			if err := stream.Send(ev); err != nil {
				return err
			}
		}
		select {
		case <-w.notify:
		case <-stream.Context().Done():
			return nil
		case <-h.closed:
			return nil
		}
	}
}
