// The batch-queue provider: pods wait in a FIFO queue and at most `slots` of them run at once.
// A container's work is simulated: it "runs" for a duration (annotation, `sleep N` command or
// the default), then exits with a code (annotation, default 0); the restart policy applies. The
// queue position is reported in the pod status message. Exec is in exec.go.
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/vk-project/vk/sdk/go/gen/vk/provider/v1"
	"github.com/vk-project/vk/sdk/go/vkprovider"
)

type provider struct {
	pb.UnimplementedProviderServiceServer
	hub     *vkprovider.StatusHub
	slots   int
	def     time.Duration
	workdir string

	mu      sync.Mutex // guards everything below and every pod and container
	pods    map[string]*pod
	queue   []*pod // waiting for a slot, oldest first
	running int    // pods holding a slot
}

type pod struct {
	spec     *pb.Pod
	info     *vkprovider.PodInfo
	dir      string // scratch folder: the working directory of exec
	started  *timestamppb.Timestamp
	init     []*container
	app      []*container
	nextInit int // index of the init container to run; len(init) once app containers run
	message  string
	active   bool // holds a slot
	deleting bool
}

type container struct {
	job
	name      string
	env       []string
	st        *pb.ContainerStatus
	log, prev *vkprovider.LogBuffer // current and previous instance's log
	gen       int                   // bumped on every start, exit and cancel: stale timers see a new value
}

func newProvider(slots int, def time.Duration, workdir string) *provider {
	return &provider{hub: vkprovider.NewStatusHub(), slots: slots, def: def, workdir: workdir, pods: map[string]*pod{}}
}

func (p *provider) Handshake(context.Context, *pb.HandshakeRequest) (*pb.HandshakeResponse, error) {
	return &pb.HandshakeResponse{
		ProviderName: "batch", ProviderVersion: "0.1.0",
		ContractVersions: []string{vkprovider.ContractVersion}, ContractRevision: vkprovider.ContractRevision,
		Capabilities: []pb.Capability{pb.Capability_CAPABILITY_LOGS, pb.Capability_CAPABILITY_LOGS_PREVIOUS, pb.Capability_CAPABILITY_EXEC},
		Node: &pb.NodeTemplate{
			Capacity:        map[string]string{"cpu": strconv.Itoa(p.slots), "memory": "16Gi", "pods": "110"},
			Labels:          map[string]string{"batch.vk-project.io/slots": strconv.Itoa(p.slots)},
			OperatingSystem: "linux", Architecture: runtime.GOARCH,
			SystemInfo: &pb.NodeSystemInfo{OsImage: "batch queue (simulated work)"},
		},
	}, nil
}

func (p *provider) CreatePod(_ context.Context, req *pb.CreatePodRequest) (*pb.CreatePodResponse, error) {
	spec := req.GetPod()
	info, err := vkprovider.DecodePod(spec)
	if err != nil || spec.GetUid() == "" {
		return nil, status.Errorf(codes.InvalidArgument, "not a valid pod (uid %q): %v", spec.GetUid(), err)
	}
	pd := &pod{spec: spec, info: info, dir: filepath.Join(p.workdir, spec.GetUid())}
	for i, list := range [][]*pb.ResolvedContainer{spec.GetInitContainers(), spec.GetContainers()} {
		for _, rc := range list {
			j, err := parseJob(info.Metadata.Annotations, rc, p.def)
			if err != nil {
				return nil, status.Error(codes.InvalidArgument, err.Error())
			}
			c := &container{job: j, name: rc.GetName(), log: vkprovider.NewLogBuffer(), st: &pb.ContainerStatus{
				Name: rc.GetName(), Image: rc.GetImage(), State: waiting("Queued", "waiting for a free slot")}}
			for _, e := range rc.GetEnv() {
				c.env = append(c.env, e.GetName()+"="+e.GetValue())
			}
			if i == 0 {
				pd.init = append(pd.init, c)
			} else {
				pd.app = append(pd.app, c)
			}
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.pods[spec.GetUid()]; ok {
		return &pb.CreatePodResponse{}, nil // idempotent by UID
	}
	if err := os.MkdirAll(pd.dir, 0o700); err != nil {
		return nil, status.Errorf(codes.Internal, "creating scratch folder: %v", err)
	}
	p.pods[spec.GetUid()] = pd
	p.queue = append(p.queue, pd)
	p.schedule()
	return &pb.CreatePodResponse{}, nil
}

// schedule starts queued pods while slots are free and republishes changed queue positions.
func (p *provider) schedule() {
	for p.running < p.slots && len(p.queue) > 0 {
		pd := p.queue[0]
		p.queue = p.queue[1:]
		pd.active, pd.message, pd.started = true, "", timestamppb.Now()
		p.running++
		if len(pd.init) > 0 {
			for _, c := range pd.app {
				c.st.State = waiting("PodInitializing", "")
			}
			p.start(pd, pd.init[0])
		} else {
			for _, c := range pd.app {
				p.start(pd, c)
			}
		}
		p.publish(pd)
	}
	for i, pd := range p.queue {
		if msg := queueMessage(i, len(p.queue)); msg != pd.message {
			pd.message = msg
			p.publish(pd)
		}
	}
}

func queueMessage(index, total int) string {
	return fmt.Sprintf("queued: position %d of %d", index+1, total)
}

// start runs one instance of c; a timer ends it after its duration.
func (p *provider) start(pd *pod, c *container) {
	c.gen++
	gen := c.gen
	c.st.State = &pb.ContainerState{State: &pb.ContainerState_Running{Running: &pb.ContainerStateRunning{StartedAt: timestamppb.Now()}}}
	c.st.Ready = pd.nextInit >= len(pd.init)
	c.st.ContainerId = fmt.Sprintf("batch://%s-%s-%d", pd.spec.GetUid(), c.name, c.st.RestartCount)
	c.log.Append(pb.LogStream_LOG_STREAM_STDOUT, fmt.Sprintf("started: working for %s, then exiting with code %d", c.run, c.exitCode))
	time.AfterFunc(c.run, func() { p.exited(pd, c, gen, c.exitCode, 0, "") })
}

// exited ends instance `gen` of c, then moves the pod on: next init container, restart, slot release.
func (p *provider) exited(pd *pod, c *container, gen int, code, signal int32, msg string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c.gen != gen || c.st.State.GetRunning() == nil {
		return // a stale timer: that instance already ended
	}
	c.gen++
	reason := "Completed"
	if code != 0 {
		reason = "Error"
	}
	run := c.st.State.GetRunning()
	term := &pb.ContainerStateTerminated{ExitCode: code, Signal: signal, Reason: reason, Message: msg,
		StartedAt: run.StartedAt, FinishedAt: timestamppb.Now(), ContainerId: c.st.ContainerId}
	c.st.State, c.st.Ready = &pb.ContainerState{State: &pb.ContainerState_Terminated{Terminated: term}}, false
	c.log.Append(pb.LogStream_LOG_STREAM_STDERR, fmt.Sprintf("exited with code %d", code))
	c.log.Close()
	isInit := pd.nextInit < len(pd.init)
	switch {
	case pd.deleting:
	case isInit && code == 0:
		if pd.nextInit++; pd.nextInit < len(pd.init) {
			p.start(pd, pd.init[pd.nextInit])
		} else {
			for _, app := range pd.app {
				p.start(pd, app)
			}
		}
	case pd.info.ShouldRestart(code) || (isInit && pd.info.Spec.RestartPolicy != "Never"):
		p.restartLater(pd, c, term)
	case isInit:
		p.release(pd) // init container failed for good: the pod failed
	}
	if pd.deleting && allTerminated(pd.init, pd.app) {
		p.forget(pd)
		return
	}
	if !pd.deleting && pd.nextInit >= len(pd.init) && allTerminated(pd.app) {
		p.release(pd) // every app container finished and none restarts
	}
	p.publish(pd)
}

// restartLater starts c again after an exponential back-off (1 s, 2 s, 4 s … at most 30 s).
func (p *provider) restartLater(pd *pod, c *container, term *pb.ContainerStateTerminated) {
	delay := min(time.Second<<min(c.st.RestartCount, 5), 30*time.Second)
	c.st.LastTermination = term
	c.st.State = waiting("CrashLoopBackOff", fmt.Sprintf("back-off %s restarting container %s", delay, c.name))
	gen := c.gen
	time.AfterFunc(delay, func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		if c.gen != gen || pd.deleting {
			return
		}
		c.prev, c.log = c.log, vkprovider.NewLogBuffer()
		c.st.RestartCount++
		p.start(pd, c)
		p.publish(pd)
	})
}

// release gives the pod's slot to the next queued pod.
func (p *provider) release(pd *pod) {
	if pd.active {
		pd.active = false
		p.running--
		p.schedule()
	}
}

// forget publishes the pod's final status, then `removed`, and frees everything it held.
func (p *provider) forget(pd *pod) {
	p.publish(pd)
	p.hub.Remove(pd.spec.GetUid())
	delete(p.pods, pd.spec.GetUid())
	os.RemoveAll(pd.dir)
	p.release(pd)
}

func (p *provider) DeletePod(_ context.Context, req *pb.DeletePodRequest) (*pb.DeletePodResponse, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	pd := p.pods[req.GetUid()]
	if pd == nil || pd.deleting {
		return &pb.DeletePodResponse{}, nil
	}
	pd.deleting = true
	grace := time.Duration(pd.info.GracePeriod()) * time.Second
	if req.GracePeriodSeconds != nil {
		grace = time.Duration(req.GetGracePeriodSeconds()) * time.Second
	}
	for i, q := range p.queue {
		if q == pd {
			p.queue = append(p.queue[:i], p.queue[i+1:]...)
			p.schedule() // the pods behind it move up
			break
		}
	}
	for _, c := range pd.all() {
		switch {
		case c.st.State.GetRunning() != nil: // SIGTERM; a job slower to stop than the grace period is killed
			code, signal, after, note := int32(143), int32(15), c.stop, "received SIGTERM"
			if c.stop > grace || grace == 0 {
				code, signal, after = 137, 9, grace
			}
			if grace == 0 {
				note = "received SIGKILL"
			}
			c.log.Append(pb.LogStream_LOG_STREAM_STDERR, note)
			gen := c.gen
			time.AfterFunc(after, func() { p.exited(pd, c, gen, code, signal, "stopped by DeletePod") })
		case c.st.State.GetWaiting() != nil: // never started, or waiting to restart
			c.gen++
			c.st.State = &pb.ContainerState{State: &pb.ContainerState_Terminated{Terminated: &pb.ContainerStateTerminated{
				ExitCode: 137, Reason: "Cancelled", Message: "pod deleted while the container was not running", FinishedAt: timestamppb.Now()}}}
			c.log.Close()
		}
	}
	if allTerminated(pd.init, pd.app) {
		p.forget(pd)
	} else {
		p.publish(pd)
	}
	return &pb.DeletePodResponse{}, nil
}

func (p *provider) GetPodStatus(_ context.Context, req *pb.GetPodStatusRequest) (*pb.GetPodStatusResponse, error) {
	return p.hub.GetPodStatus(req.GetUid())
}

func (p *provider) ListPods(context.Context, *pb.ListPodsRequest) (*pb.ListPodsResponse, error) {
	return &pb.ListPodsResponse{Pods: p.hub.List()}, nil
}

func (p *provider) WatchPodStatus(_ *pb.WatchPodStatusRequest, s grpc.ServerStreamingServer[pb.WatchPodStatusResponse]) error {
	return p.hub.Watch(s)
}

func (p *provider) GetContainerLogs(req *pb.GetContainerLogsRequest, s grpc.ServerStreamingServer[pb.GetContainerLogsResponse]) error {
	p.mu.Lock()
	c, err := p.lookup(req.GetUid(), req.GetContainer())
	var buf *vkprovider.LogBuffer
	if err == nil {
		buf = c.log
		if req.GetPrevious() {
			buf = c.prev
		}
		if buf == nil {
			err = status.Errorf(codes.FailedPrecondition, "container %s has not restarted: no previous instance", c.name)
		}
	}
	p.mu.Unlock()
	if err != nil {
		return err
	}
	return buf.Serve(req, s)
}

// lookup finds a container of a known pod; NOT_FOUND otherwise. Call with p.mu held.
func (p *provider) lookup(uid, name string) (*container, error) {
	pd := p.pods[uid]
	if pd == nil {
		return nil, status.Errorf(codes.NotFound, "pod %s not found", uid)
	}
	for _, c := range pd.all() {
		if c.name == name {
			return c, nil
		}
	}
	return nil, status.Errorf(codes.NotFound, "pod %s has no container %q", uid, name)
}

func (p *provider) publish(pd *pod) {
	st := &pb.PodStatus{Uid: pd.spec.GetUid(), Namespace: pd.spec.GetNamespace(), Name: pd.spec.GetName(),
		Message: pd.message, StartTime: pd.started}
	for _, c := range pd.init {
		st.InitContainers = append(st.InitContainers, c.st)
	}
	for _, c := range pd.app {
		st.Containers = append(st.Containers, c.st)
	}
	p.hub.Publish(st) // copies st
}

// all is the pod's init containers then its app containers.
func (pd *pod) all() []*container { return append(append([]*container{}, pd.init...), pd.app...) }

func allTerminated(cs ...[]*container) bool {
	for _, list := range cs {
		for _, c := range list {
			if c.st.State.GetTerminated() == nil {
				return false
			}
		}
	}
	return true
}

func waiting(reason, msg string) *pb.ContainerState {
	return &pb.ContainerState{State: &pb.ContainerState_Waiting{Waiting: &pb.ContainerStateWaiting{Reason: reason, Message: msg}}}
}
