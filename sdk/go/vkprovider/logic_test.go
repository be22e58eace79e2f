// Tests of the pure helpers: SelectLogLines, DecodePod and the restart policy, StatusHub revisions.
package vkprovider

import (
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	providerv1 "github.com/vk-project/vk/sdk/go/gen/vk/provider/v1"
)

func line(sec int, stream providerv1.LogStream, text string) *providerv1.LogLine {
	return &providerv1.LogLine{Time: timestamppb.New(time.Unix(int64(sec), 0)), Stream: stream, Content: []byte(text)}
}

func texts(lines []*providerv1.LogLine) string {
	s := ""
	for _, l := range lines {
		s += string(l.GetContent())
	}
	return s
}

func TestSelectLogLines(t *testing.T) {
	out, errS := providerv1.LogStream_LOG_STREAM_STDOUT, providerv1.LogStream_LOG_STREAM_STDERR
	lines := []*providerv1.LogLine{line(10, out, "a"), line(20, errS, "b"), line(30, out, "c"), line(40, 0, "d")}
	i64 := func(v int64) *int64 { return &v }
	now := time.Unix(45, 0)
	cases := []struct {
		name string
		req  *providerv1.GetContainerLogsRequest
		want string
	}{
		{"all", &providerv1.GetContainerLogsRequest{}, "abcd"},
		{"stdout (unspecified line = stdout)", &providerv1.GetContainerLogsRequest{Stream: out}, "acd"},
		{"stderr", &providerv1.GetContainerLogsRequest{Stream: errS}, "b"},
		{"tail 2", &providerv1.GetContainerLogsRequest{TailLines: i64(2)}, "cd"},
		{"tail 0", &providerv1.GetContainerLogsRequest{TailLines: i64(0)}, ""},
		{"tail after stream filter", &providerv1.GetContainerLogsRequest{TailLines: i64(1), Stream: errS}, "b"},
		{"since seconds", &providerv1.GetContainerLogsRequest{SinceSeconds: i64(15)}, "cd"},
		{"since time, inclusive", &providerv1.GetContainerLogsRequest{SinceTime: timestamppb.New(time.Unix(20, 0))}, "bcd"},
		{"since then tail", &providerv1.GetContainerLogsRequest{SinceSeconds: i64(30), TailLines: i64(5)}, "bcd"},
	}
	for _, c := range cases {
		if got := texts(SelectLogLines(lines, c.req, now)); got != c.want {
			t.Errorf("%s: got %q, want %q", c.name, got, c.want)
		}
	}
}

func TestDecodePodAndRestartPolicy(t *testing.T) {
	pod := &providerv1.Pod{PodJson: []byte(`{"apiVersion":"v1","kind":"Pod","metadata":{"annotations":{"k":"v"}},
		"spec":{"restartPolicy":"OnFailure","terminationGracePeriodSeconds":5,
		"containers":[{"name":"main","volumeMounts":[{"name":"cfg","mountPath":"/etc/cfg"}]}]}}`)}
	info, err := DecodePod(pod)
	if err != nil {
		t.Fatal(err)
	}
	if info.Metadata.Annotations["k"] != "v" || info.GracePeriod() != 5 || info.Spec.Containers[0].VolumeMounts[0].MountPath != "/etc/cfg" {
		t.Fatalf("decoded %+v", info)
	}
	if info.ShouldRestart(0) || !info.ShouldRestart(1) {
		t.Fatal("OnFailure restarts only failures")
	}
	empty, err := DecodePod(&providerv1.Pod{})
	if err != nil || empty.Spec.RestartPolicy != "Always" || empty.GracePeriod() != 30 || !empty.ShouldRestart(0) {
		t.Fatalf("defaults: %+v %v", empty, err)
	}
	never := &PodInfo{}
	never.Spec.RestartPolicy = "Never"
	if never.ShouldRestart(1) {
		t.Fatal("Never restarts nothing")
	}
	if _, err := DecodePod(&providerv1.Pod{PodJson: []byte("{")}); err == nil {
		t.Fatal("bad JSON accepted")
	}
}

func TestStatusHubRevisionsIncreaseAndCopies(t *testing.T) {
	hub := NewStatusHub()
	st := &providerv1.PodStatus{Uid: "b"}
	hub.Publish(st)
	hub.Publish(&providerv1.PodStatus{Uid: "a"})
	hub.Publish(st)
	if st.Revision != 0 {
		t.Fatal("Publish changed the caller's message")
	}
	got, _ := hub.Get("b")
	if got.Revision != 3 || got.ProviderInstance == "" {
		t.Fatalf("b: %v", got)
	}
	list := hub.List()
	if len(list) != 2 || list[0].Uid != "a" || list[1].Uid != "b" {
		t.Fatalf("list: %v", list)
	}
	if !hub.Remove("a") || hub.Remove("a") {
		t.Fatal("Remove reports whether the pod was known")
	}
	if NewStatusHub().Instance() == hub.Instance() {
		t.Fatal("instance IDs must differ")
	}
}
