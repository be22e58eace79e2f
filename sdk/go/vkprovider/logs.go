// Log selection: the `kubectl logs` options a provider must apply itself (stream, since_seconds,
// since_time, tail_lines) over lines it stored, oldest first. vk-host applies `timestamps` and
// `limit_bytes`; `follow` and `previous` decide which lines a provider reads, so they are the
// caller's business.
package vkprovider

import (
	"time"

	providerv1 "github.com/vk-project/vk/sdk/go/gen/vk/provider/v1"
)

// LogWanted reports whether a line written to stream should be returned for req.Stream
// (UNSPECIFIED on either side means stdout for a line, both streams for a request).
func LogWanted(req *providerv1.GetContainerLogsRequest, stream providerv1.LogStream) bool {
	if req.GetStream() == providerv1.LogStream_LOG_STREAM_UNSPECIFIED {
		return true
	}
	if stream == providerv1.LogStream_LOG_STREAM_UNSPECIFIED {
		stream = providerv1.LogStream_LOG_STREAM_STDOUT
	}
	return stream == req.GetStream()
}

// LogSince is the earliest time a line may have for req (zero time: no limit), given now.
func LogSince(req *providerv1.GetContainerLogsRequest, now time.Time) time.Time {
	switch {
	case req.SinceSeconds != nil:
		return now.Add(-time.Duration(req.GetSinceSeconds()) * time.Second)
	case req.GetSinceTime() != nil:
		return req.GetSinceTime().AsTime()
	}
	return time.Time{}
}

// SelectLogLines returns the lines of `lines` (oldest first) that req asks for: of the wanted
// stream, written at or after the since limit, then only the last tail_lines of those.
func SelectLogLines(lines []*providerv1.LogLine, req *providerv1.GetContainerLogsRequest, now time.Time) []*providerv1.LogLine {
	since := LogSince(req, now)
	out := make([]*providerv1.LogLine, 0, len(lines))
	for _, l := range lines {
		if !LogWanted(req, l.GetStream()) {
			continue
		}
		if !since.IsZero() && l.GetTime() != nil && l.GetTime().AsTime().Before(since) {
			continue
		}
		out = append(out, l)
	}
	if req.TailLines != nil {
		n := max(int(req.GetTailLines()), 0)
		if len(out) > n {
			out = out[len(out)-n:]
		}
	}
	return out
}
