// Package vkprovider helps write a vk provider in Go on top of the generated contract
// (github.com/vk-project/vk/sdk/go/gen/vk/provider/v1):
//
//   - Serve: serve a ProviderService on a Unix socket the way vk-host expects (stale socket
//     removed, a live one refused, mode 0600, gRPC health and reflection, graceful stop on
//     SIGTERM/SIGINT);
//   - StatusHub: the WatchPodStatus/GetPodStatus/ListPods bookkeeping (snapshot, then
//     initial_sync_complete, then changes with increasing revisions, to any number of watchers);
//   - SelectLogLines: the `kubectl logs` options (tail, since, stream) applied to stored lines;
//   - DecodePod: the few fields of pod_json most providers need;
//   - Dial: a client connection to a provider's socket (tests, tools).
//
// This file holds the serving part.
package vkprovider

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"

	providerv1 "github.com/vk-project/vk/sdk/go/gen/vk/provider/v1"
)

// ContractVersion is the contract version this SDK speaks, for HandshakeResponse.contract_versions.
const ContractVersion = "v1"

// ContractRevision is the additive revision of the v1 contract this SDK was generated from
// (see proto/README.md), for HandshakeResponse.contract_revision.
const ContractRevision uint32 = 1

// MaxMessageBytes is the largest gRPC message either side accepts (pods with large volume files).
const MaxMessageBytes = 64 << 20

// ErrSocketInUse means another process answers on the socket path.
var ErrSocketInUse = errors.New("another process is already serving on the socket")

// Options tunes Serve. The zero value is the recommended setting.
type Options struct {
	// SocketMode is the socket file's permission bits; 0 means 0600.
	SocketMode os.FileMode
	// ShutdownGrace is how long in-flight RPCs (watch streams included) may run after the
	// stop signal before they are cut; 0 means 5 s.
	ShutdownGrace time.Duration
	// Logger receives start/stop messages; nil means slog.Default().
	Logger *slog.Logger
	// OnShutdown, if set, runs after the stop signal, before in-flight RPCs are waited for: end
	// long-lived streams (StatusHub.Close) and stop backend work there.
	OnShutdown func()
	// ServerOptions are added to the gRPC server's options.
	ServerOptions []grpc.ServerOption
}

// Serve serves provider on the Unix socket at path until ctx is cancelled or the process gets
// SIGTERM or SIGINT, then stops gracefully and removes the socket file.
func Serve(ctx context.Context, path string, provider providerv1.ProviderServiceServer, opts *Options) error {
	if opts == nil {
		opts = &Options{}
	}
	mode, grace, log := opts.SocketMode, opts.ShutdownGrace, opts.Logger
	if mode == 0 {
		mode = 0o600
	}
	if grace == 0 {
		grace = 5 * time.Second
	}
	if log == nil {
		log = slog.Default()
	}
	lis, err := Bind(path, mode)
	if err != nil {
		return err
	}
	defer os.Remove(path)

	srv := grpc.NewServer(append([]grpc.ServerOption{
		grpc.MaxRecvMsgSize(MaxMessageBytes), grpc.MaxSendMsgSize(MaxMessageBytes),
	}, opts.ServerOptions...)...)
	providerv1.RegisterProviderServiceServer(srv, provider)
	healthSrv := health.NewServer()
	healthSrv.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	healthSrv.SetServingStatus(providerv1.ProviderService_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(srv, healthSrv)
	reflection.Register(srv)

	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()
	log.Info("provider serving", "socket", path)

	select {
	case err := <-served:
		return fmt.Errorf("serving %s: %w", path, err)
	case <-ctx.Done():
	}
	log.Info("shutting down", "socket", path, "grace", grace)
	healthSrv.Shutdown()
	if opts.OnShutdown != nil {
		opts.OnShutdown()
	}
	done := make(chan struct{})
	go func() { srv.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-time.After(grace):
		srv.Stop() // cancels the streams still open (WatchPodStatus never ends by itself)
		<-done
	}
	log.Info("provider stopped", "socket", path)
	return nil
}

// Bind listens on the Unix socket at path: it refuses a path that is not a socket or on which a
// live process answers, removes a stale socket, creates the parent folder and sets the mode.
func Bind(path string, mode os.FileMode) (net.Listener, error) {
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("%s exists and is not a socket; refusing to remove it", path)
		}
		if conn, err := net.DialTimeout("unix", path, time.Second); err == nil {
			conn.Close()
			return nil, fmt.Errorf("%s: %w", path, ErrSocketInUse)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("removing stale socket %s: %w", path, err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("inspecting %s: %w", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("creating socket folder: %w", err)
	}
	// The umask keeps the socket private between bind and chmod.
	old := syscall.Umask(0o177)
	lis, err := net.Listen("unix", path)
	syscall.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("binding %s: %w", path, err)
	}
	if err := os.Chmod(path, mode); err != nil {
		lis.Close()
		return nil, fmt.Errorf("setting mode of %s: %w", path, err)
	}
	return lis, nil
}

// Dial opens a client connection to the provider socket at path (lazily: the first RPC
// connects). grpc-go sends `:authority: localhost`, which every gRPC server accepts.
func Dial(path string) (*grpc.ClientConn, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	return grpc.NewClient("unix://"+abs,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(MaxMessageBytes), grpc.MaxCallSendMsgSize(MaxMessageBytes)))
}
