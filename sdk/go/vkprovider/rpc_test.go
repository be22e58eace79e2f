// Tests of ExecProcess and LogBuffer through a real gRPC stream on a Unix socket.
package vkprovider

import (
	"context"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"

	providerv1 "github.com/vk-project/vk/sdk/go/gen/vk/provider/v1"
)

// rpcProvider execs every command locally and serves logs from one buffer.
type rpcProvider struct {
	providerv1.UnimplementedProviderServiceServer
	buf *LogBuffer
}

func (p *rpcProvider) Exec(s grpc.BidiStreamingServer[providerv1.ExecRequest, providerv1.ExecResponse]) error {
	start, err := RecvExecStart(s)
	if err != nil {
		return err
	}
	return ExecProcess(s, start, exec.Command(start.GetCommand()[0], start.GetCommand()[1:]...))
}

func (p *rpcProvider) GetContainerLogs(req *providerv1.GetContainerLogsRequest, s grpc.ServerStreamingServer[providerv1.GetContainerLogsResponse]) error {
	return p.buf.Serve(req, s)
}

func startRPC(t *testing.T, p providerv1.ProviderServiceServer) providerv1.ProviderServiceClient {
	t.Helper()
	path := filepath.Join(t.TempDir(), "p.sock")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { Serve(ctx, path, p, &Options{ShutdownGrace: 100 * time.Millisecond}); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	waitForSocket(t, path)
	conn, err := Dial(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return providerv1.NewProviderServiceClient(conn)
}

type execResult struct {
	stdout, stderr string
	exit           *providerv1.ProcessExit
	after          int // messages after exit
}

func runExec(t *testing.T, c providerv1.ProviderServiceClient, stdin string, argv ...string) execResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := c.Exec(ctx)
	if err != nil {
		t.Fatal(err)
	}
	start := &providerv1.ExecStart{Command: argv, Stdout: true, Stderr: true, Stdin: stdin != ""}
	s.Send(&providerv1.ExecRequest{Input: &providerv1.ExecRequest_Start{Start: start}})
	if stdin != "" {
		s.Send(&providerv1.ExecRequest{Input: &providerv1.ExecRequest_Stdin{Stdin: []byte(stdin)}})
		s.Send(&providerv1.ExecRequest{Input: &providerv1.ExecRequest_StdinClose{StdinClose: &providerv1.StdinClose{}}})
	}
	var r execResult
	for {
		m, err := s.Recv()
		if err == io.EOF {
			return r
		}
		if err != nil {
			t.Fatalf("exec %v: %v", argv, err)
		}
		if r.exit != nil {
			r.after++
		}
		r.stdout += string(m.GetStdout())
		r.stderr += string(m.GetStderr())
		if m.GetExit() != nil {
			r.exit = m.GetExit()
		}
	}
}

func TestExecProcess(t *testing.T) {
	c := startRPC(t, &rpcProvider{})
	if r := runExec(t, c, "", "sh", "-c", "exit 3"); r.exit.GetExitCode() != 3 || r.after != 0 {
		t.Fatalf("exit 3: %+v", r)
	}
	if r := runExec(t, c, "", "sh", "-c", "echo hello; echo oops >&2"); r.stdout != "hello\n" || r.stderr != "oops\n" || r.exit.GetExitCode() != 0 {
		t.Fatalf("echo: %+v", r)
	}
	if r := runExec(t, c, "from stdin\n", "cat"); r.stdout != "from stdin\n" || r.exit.GetExitCode() != 0 {
		t.Fatalf("cat: %+v", r)
	}
	if r := runExec(t, c, "", "sh", "-c", "kill -TERM $$"); r.exit.GetExitCode() != 143 {
		t.Fatalf("signal: %+v", r)
	}
	if r := runExec(t, c, "", "no-such-program-vk"); r.exit.GetExitCode() != 127 || r.exit.GetMessage() == "" {
		t.Fatalf("not found: %+v", r)
	}
}

func TestLogBufferFollowEndsOnClose(t *testing.T) {
	buf := NewLogBuffer()
	buf.Append(providerv1.LogStream_LOG_STREAM_STDOUT, "one")
	buf.Append(providerv1.LogStream_LOG_STREAM_STDERR, "two\n")
	c := startRPC(t, &rpcProvider{buf: buf})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tail := int64(1)
	s, err := c.GetContainerLogs(ctx, &providerv1.GetContainerLogsRequest{Follow: true, TailLines: &tail})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	recvLine := func() {
		m, err := s.Recv()
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range m.GetLines() {
			got = append(got, string(l.GetContent()))
		}
	}
	recvLine()
	buf.Append(providerv1.LogStream_LOG_STREAM_STDOUT, "three")
	recvLine()
	buf.Close()
	buf.Append(providerv1.LogStream_LOG_STREAM_STDOUT, "ignored after close")
	if _, err := s.Recv(); err != io.EOF {
		t.Fatalf("follow did not end with OK after Close: %v", err)
	}
	if strings.Join(got, "") != "two\nthree\n" {
		t.Fatalf("got %q", got)
	}
}
