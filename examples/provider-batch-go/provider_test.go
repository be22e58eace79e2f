// Tests of the batch provider's logic, driving it directly (no socket): job parsing, queue
// positions, the concurrency limit, exit codes from annotations, restarts and deletion of queued
// and running pods.
package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	pb "github.com/vk-project/vk/sdk/go/gen/vk/provider/v1"
)

func TestParseJob(t *testing.T) {
	c := &pb.ResolvedContainer{Name: "main", Command: []string{"/bin/sleep"}, Args: []string{"2.5"}}
	j, err := parseJob(nil, c, time.Minute)
	if err != nil || j.run != 2500*time.Millisecond || j.exitCode != 0 {
		t.Fatalf("sleep N: %+v %v", j, err)
	}
	j, _ = parseJob(nil, &pb.ResolvedContainer{Name: "main", Command: []string{"run-job"}}, time.Minute)
	if j.run != time.Minute {
		t.Fatalf("default: %+v", j)
	}
	ann := map[string]string{annDuration: "3s", annExitCode: "4", annDuration + ".main": "1s", annStop: "2s"}
	j, err = parseJob(ann, c, time.Minute)
	if err != nil || j.run != time.Second || j.exitCode != 4 || j.stop != 2*time.Second {
		t.Fatalf("annotations: %+v %v", j, err)
	}
	for _, bad := range []map[string]string{{annDuration: "soon"}, {annExitCode: "256"}, {annStop: "-1s"}} {
		if _, err := parseJob(bad, c, time.Minute); err == nil || !strings.Contains(err.Error(), "annotation") {
			t.Errorf("%v accepted (%v)", bad, err)
		}
	}
}

func testPod(uid, restart string, ann map[string]string) *pb.Pod {
	js, _ := json.Marshal(map[string]any{
		"metadata": map[string]any{"annotations": ann},
		"spec":     map[string]any{"restartPolicy": restart, "containers": []any{map[string]any{"name": "main"}}},
	})
	return &pb.Pod{Uid: uid, Namespace: "ns", Name: uid, PodJson: js,
		Containers: []*pb.ResolvedContainer{{Name: "main", Command: []string{"true"}}}}
}

// waitFor polls the pod's status until cond holds.
func waitFor(t *testing.T, p *provider, uid, what string, cond func(*pb.PodStatus) bool) *pb.PodStatus {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if st, ok := p.hub.Get(uid); ok && cond(st) {
			return st
		}
		time.Sleep(5 * time.Millisecond)
	}
	st, _ := p.hub.Get(uid)
	t.Fatalf("pod %s: %s never held; last status %v", uid, what, st)
	return nil
}

func terminated(st *pb.PodStatus) *pb.ContainerStateTerminated {
	return st.GetContainers()[0].GetState().GetTerminated()
}

func TestQueueLimitExitCodesAndDeletion(t *testing.T) {
	p := newProvider(1, time.Hour, t.TempDir())
	ctx := context.Background()
	create := func(pod *pb.Pod) {
		if _, err := p.CreatePod(ctx, &pb.CreatePodRequest{Pod: pod}); err != nil {
			t.Fatal(err)
		}
	}
	create(testPod("a", "Never", map[string]string{annDuration: "200ms", annExitCode: "3"}))
	create(testPod("b", "Never", map[string]string{annDuration: "10ms"}))
	create(testPod("c", "Never", nil))
	create(testPod("a", "Never", nil)) // idempotent: no second queue entry

	if st, _ := p.hub.Get("b"); st.GetMessage() != "queued: position 1 of 2" || st.GetContainers()[0].GetState().GetWaiting().GetReason() != "Queued" {
		t.Fatalf("b: %v", st)
	}
	if st, _ := p.hub.Get("c"); st.GetMessage() != "queued: position 2 of 2" {
		t.Fatalf("c: %v", st)
	}
	st := waitFor(t, p, "a", "terminated", func(s *pb.PodStatus) bool { return terminated(s) != nil })
	if term := terminated(st); term.GetExitCode() != 3 || term.GetReason() != "Error" {
		t.Fatalf("a: %v", term)
	}
	waitFor(t, p, "b", "completed", func(s *pb.PodStatus) bool { return terminated(s).GetExitCode() == 0 && terminated(s) != nil })
	st = waitFor(t, p, "c", "running", func(s *pb.PodStatus) bool { return s.GetContainers()[0].GetState().GetRunning() != nil })
	if st.GetMessage() != "" {
		t.Fatalf("a running pod has no queue message: %q", st.GetMessage())
	}

	// A queued pod is cancelled and forgotten at once; the running one stops on SIGTERM.
	create(testPod("d", "Never", nil))
	if _, err := p.DeletePod(ctx, &pb.DeletePodRequest{Uid: "d"}); err != nil {
		t.Fatal(err)
	}
	if _, ok := p.hub.Get("d"); ok {
		t.Fatal("deleted queued pod still known")
	}
	zero := int64(0)
	if _, err := p.DeletePod(ctx, &pb.DeletePodRequest{Uid: "c", GracePeriodSeconds: &zero}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for _, ok := p.hub.Get("c"); ok; _, ok = p.hub.Get("c") {
		if time.Now().After(deadline) {
			t.Fatal("running pod not removed after DeletePod")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, err := p.DeletePod(ctx, &pb.DeletePodRequest{Uid: "c"}); err != nil {
		t.Fatalf("second DeletePod: %v", err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.running != 0 || len(p.queue) != 0 {
		t.Fatalf("slots leaked: running %d, queue %d", p.running, len(p.queue))
	}
}

func TestRestartOnFailureKeepsPreviousLog(t *testing.T) {
	p := newProvider(1, time.Hour, t.TempDir())
	if _, err := p.CreatePod(context.Background(), &pb.CreatePodRequest{Pod: testPod("r", "OnFailure",
		map[string]string{annDuration: "10ms", annExitCode: "1"})}); err != nil {
		t.Fatal(err)
	}
	st := waitFor(t, p, "r", "restarted", func(s *pb.PodStatus) bool { return s.GetContainers()[0].GetRestartCount() >= 1 })
	if st.GetContainers()[0].GetLastTermination().GetExitCode() != 1 {
		t.Fatalf("last termination: %v", st.GetContainers()[0])
	}
	p.mu.Lock()
	c, err := p.lookup("r", "main")
	if err != nil || c.prev == nil || !strings.Contains(string(c.prev.Lines()[len(c.prev.Lines())-1].GetContent()), "exited with code 1") {
		t.Fatalf("previous log: %v %v", c, err)
	}
	_, err = p.lookup("r", "nope")
	p.mu.Unlock()
	if err == nil {
		t.Fatal("unknown container found")
	}
	if queueMessage(2, 7) != "queued: position 3 of 7" {
		t.Fatal(queueMessage(2, 7))
	}
}
