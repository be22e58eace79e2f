// Tests of Serve, Bind and StatusHub.Watch through a real Unix socket and a real gRPC client.
package vkprovider

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	providerv1 "github.com/vk-project/vk/sdk/go/gen/vk/provider/v1"
)

func TestBindReplacesStaleSocketAndSetsMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "p.sock")
	first, err := Bind(path, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	first.(*net.UnixListener).SetUnlinkOnClose(false)
	first.Close() // leaves a stale socket file behind
	if _, err := os.Lstat(path); err != nil {
		t.Fatalf("stale socket expected: %v", err)
	}
	second, err := Bind(path, 0o600)
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	defer second.Close()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o600 {
		t.Fatalf("mode %o, want 600", got)
	}
}

func TestBindRefusesLiveSocketAndNonSocket(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "p.sock")
	lis, err := Bind(path, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	if _, err := Bind(path, 0o600); !errors.Is(err, ErrSocketInUse) {
		t.Fatalf("live socket: got %v, want ErrSocketInUse", err)
	}
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Bind(file, 0o600); err == nil {
		t.Fatal("a regular file was replaced")
	}
	if _, err := os.Stat(file); err != nil {
		t.Fatalf("regular file removed: %v", err)
	}
}

// hubProvider implements only the status RPCs, from a StatusHub.
type hubProvider struct {
	providerv1.UnimplementedProviderServiceServer
	hub *StatusHub
}

func (p *hubProvider) GetPodStatus(_ context.Context, req *providerv1.GetPodStatusRequest) (*providerv1.GetPodStatusResponse, error) {
	return p.hub.GetPodStatus(req.GetUid())
}

func (p *hubProvider) WatchPodStatus(_ *providerv1.WatchPodStatusRequest, s grpc.ServerStreamingServer[providerv1.WatchPodStatusResponse]) error {
	return p.hub.Watch(s)
}

func TestServeHealthWatchAndShutdown(t *testing.T) {
	path := filepath.Join(t.TempDir(), "p.sock")
	hub := NewStatusHub()
	hub.Publish(&providerv1.PodStatus{Uid: "a", Namespace: "ns", Name: "pa"})
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() {
		served <- Serve(ctx, path, &hubProvider{hub: hub}, &Options{ShutdownGrace: time.Minute, OnShutdown: hub.Close})
	}()
	waitForSocket(t, path)

	conn, err := Dial(path)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	rctx, rcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer rcancel()

	h, err := healthpb.NewHealthClient(conn).Check(rctx, &healthpb.HealthCheckRequest{Service: "vk.provider.v1.ProviderService"})
	if err != nil || h.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health: %v %v", h, err)
	}
	client := providerv1.NewProviderServiceClient(conn)
	if _, err := client.GetPodStatus(rctx, &providerv1.GetPodStatusRequest{Uid: "nope"}); status.Code(err) != codes.NotFound {
		t.Fatalf("unknown pod: %v, want NOT_FOUND", err)
	}

	watch, err := client.WatchPodStatus(rctx, &providerv1.WatchPodStatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	first := recv(t, watch)
	if first.GetStatus().GetUid() != "a" || first.GetStatus().GetRevision() != 1 || first.GetStatus().GetProviderInstance() != hub.Instance() {
		t.Fatalf("snapshot: %v", first)
	}
	if sync := recv(t, watch).GetInitialSyncComplete(); sync == nil || sync.GetPodCount() != 1 {
		t.Fatalf("want initial_sync_complete with pod_count 1")
	}
	hub.Publish(&providerv1.PodStatus{Uid: "a", Namespace: "ns", Name: "pa", Message: "changed"})
	if ev := recv(t, watch); ev.GetStatus().GetRevision() != 2 || ev.GetStatus().GetMessage() != "changed" {
		t.Fatalf("change: %v", ev)
	}
	hub.Remove("a")
	if ev := recv(t, watch); ev.GetRemoved().GetUid() != "a" || ev.GetRemoved().GetName() != "pa" {
		t.Fatalf("removed: %v", ev)
	}

	cancel() // as SIGTERM would; OnShutdown ends the open watch, so no grace period is waited out
	select {
	case err := <-served:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not stop: the open watch was not ended by OnShutdown")
	}
	if _, err := os.Lstat(path); !os.IsNotExist(err) {
		t.Fatalf("socket not removed: %v", err)
	}
}

func recv(t *testing.T, s grpc.ServerStreamingClient[providerv1.WatchPodStatusResponse]) *providerv1.WatchPodStatusResponse {
	t.Helper()
	ev, err := s.Recv()
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

func waitForSocket(t *testing.T, path string) {
	t.Helper()
	for range 100 {
		if _, err := os.Lstat(path); err == nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s never appeared", path)
}
