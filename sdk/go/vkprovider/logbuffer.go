// LogBuffer: one container instance's log kept in memory, served to GetContainerLogs with every
// option a provider applies (stream, since, tail, follow). For providers whose backend hands
// out log lines (simulators, remote APIs polled into memory).
package vkprovider

import (
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/timestamppb"

	providerv1 "github.com/vk-project/vk/sdk/go/gen/vk/provider/v1"
)

// LogBuffer is safe for concurrent use. Close it when the instance ends: followers then finish.
type LogBuffer struct {
	mu      sync.Mutex
	lines   []*providerv1.LogLine
	closed  bool
	changed chan struct{} // closed and replaced on every append and on Close
}

// NewLogBuffer returns an empty, open buffer.
func NewLogBuffer() *LogBuffer { return &LogBuffer{changed: make(chan struct{})} }

// Append adds one line, stamped now. A newline is added if content lacks one. Appending to a
// closed buffer is ignored.
func (b *LogBuffer) Append(stream providerv1.LogStream, content string) {
	if len(content) == 0 || content[len(content)-1] != '\n' {
		content += "\n"
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return
	}
	b.lines = append(b.lines, &providerv1.LogLine{Time: timestamppb.Now(), Stream: stream, Content: []byte(content)})
	b.wake()
}

// Close marks the instance ended.
func (b *LogBuffer) Close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.closed {
		b.closed = true
		b.wake()
	}
}

func (b *LogBuffer) wake() {
	close(b.changed)
	b.changed = make(chan struct{})
}

// Lines returns the lines written so far (shared; do not modify).
func (b *LogBuffer) Lines() []*providerv1.LogLine {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.lines[:len(b.lines):len(b.lines)]
}

// Serve answers one GetContainerLogs call: the selected lines, then with `follow` every new line
// until the buffer is closed or the caller goes away.
func (b *LogBuffer) Serve(req *providerv1.GetContainerLogsRequest, s grpc.ServerStreamingServer[providerv1.GetContainerLogsResponse]) error {
	b.mu.Lock()
	batch := SelectLogLines(b.lines, req, time.Now())
	sent := len(b.lines)
	only := &providerv1.GetContainerLogsRequest{Stream: req.GetStream()} // new lines: stream filter only
	for {
		closed, changed := b.closed, b.changed
		b.mu.Unlock()
		if len(batch) > 0 {
			if err := s.Send(&providerv1.GetContainerLogsResponse{Lines: batch}); err != nil {
				return err
			}
		}
		if !req.GetFollow() || closed {
			return nil
		}
		select {
		case <-changed:
		case <-s.Context().Done():
			return nil
		}
		b.mu.Lock()
		batch = SelectLogLines(b.lines[sent:], only, time.Now())
		sent = len(b.lines)
	}
}
