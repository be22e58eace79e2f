// What a simulated container does, from the pod's annotations and the container's command:
// how long it works, the exit code it ends with, and how long it takes to stop after SIGTERM.
package main

import (
	"fmt"
	"path"
	"strconv"
	"time"

	pb "github.com/vk-project/vk/sdk/go/gen/vk/provider/v1"
)

// Annotations read by the provider; `<key>.<container>` overrides `<key>` for one container.
const (
	annDuration = "batch.vk-project.io/duration"      // Go duration, e.g. "90s"
	annExitCode = "batch.vk-project.io/exit-code"     // 0..255
	annStop     = "batch.vk-project.io/stop-duration" // time to stop after SIGTERM, default 0
)

type job struct {
	run      time.Duration
	exitCode int32
	stop     time.Duration
}

// parseJob resolves a container's job: the duration annotation, else N for a `sleep N` command,
// else def. Errors are written for the user (they become the pod's ProviderFailed message).
func parseJob(ann map[string]string, c *pb.ResolvedContainer, def time.Duration) (job, error) {
	get := func(key string) (string, bool) {
		if v, ok := ann[key+"."+c.GetName()]; ok {
			return v, true
		}
		v, ok := ann[key]
		return v, ok
	}
	j := job{run: def}
	argv := append(append([]string{}, c.GetCommand()...), c.GetArgs()...)
	if len(argv) == 2 && path.Base(argv[0]) == "sleep" {
		if secs, err := strconv.ParseFloat(argv[1], 64); err == nil && secs >= 0 {
			j.run = time.Duration(secs * float64(time.Second))
		}
	}
	for _, d := range []struct {
		key string
		dst *time.Duration
	}{{annDuration, &j.run}, {annStop, &j.stop}} {
		if v, ok := get(d.key); ok {
			parsed, err := time.ParseDuration(v)
			if err != nil || parsed < 0 {
				return job{}, fmt.Errorf("annotation %s of container %s: %q is not a duration such as \"90s\"", d.key, c.GetName(), v)
			}
			*d.dst = parsed
		}
	}
	if v, ok := get(annExitCode); ok {
		code, err := strconv.Atoi(v)
		if err != nil || code < 0 || code > 255 {
			return job{}, fmt.Errorf("annotation %s of container %s: %q is not an exit code 0..255", annExitCode, c.GetName(), v)
		}
		j.exitCode = int32(code)
	}
	return j, nil
}
