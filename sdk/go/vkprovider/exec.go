// ExecProcess: serve an Exec call by running a local process. The provider validates the start
// message (pod, container, state) and prepares the exec.Cmd (argv, env, working directory); this
// wires stdin, stdout and stderr to the stream and ends it with the one `exit` message.
package vkprovider

import (
	"errors"
	"io"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	providerv1 "github.com/vk-project/vk/sdk/go/gen/vk/provider/v1"
)

// ExecProcess runs cmd for the Exec call whose first message was start, and returns once the
// exit message is sent. The exit code is the process's, 128+N if signal N killed it, 127 if
// the program was not found and 126 if it could not be started. There is no TTY: with `tty`,
// stderr goes to stdout. The process is killed if the caller goes away.
func ExecProcess(s grpc.BidiStreamingServer[providerv1.ExecRequest, providerv1.ExecResponse], start *providerv1.ExecStart, cmd *exec.Cmd) error {
	var mu sync.Mutex
	send := func(r *providerv1.ExecResponse) error {
		mu.Lock()
		defer mu.Unlock()
		return s.Send(r)
	}
	cmd.Stdout = writerFunc(func(b []byte) error {
		return send(&providerv1.ExecResponse{Output: &providerv1.ExecResponse_Stdout{Stdout: b}})
	})
	cmd.Stderr = writerFunc(func(b []byte) error {
		return send(&providerv1.ExecResponse{Output: &providerv1.ExecResponse_Stderr{Stderr: b}})
	})
	if start.GetTty() {
		cmd.Stderr = cmd.Stdout
	}
	cmd.WaitDelay = time.Second // do not wait forever for output pipes held by background children
	if start.GetStdin() {
		stdin, err := cmd.StdinPipe()
		if err != nil {
			return err
		}
		go forwardStdin(s, stdin)
	}
	if err := cmd.Start(); err != nil {
		return send(&providerv1.ExecResponse{Output: &providerv1.ExecResponse_Exit{Exit: exitOf(err)}})
	}
	done := make(chan struct{})
	go func() { // kill the process if the caller goes away
		select {
		case <-s.Context().Done():
			cmd.Process.Kill()
		case <-done:
		}
	}()
	err := cmd.Wait()
	close(done)
	return send(&providerv1.ExecResponse{Output: &providerv1.ExecResponse_Exit{Exit: exitOf(err)}})
}

// RecvExecStart reads the first message of an Exec call, which must be `start` with a command
// (INVALID_ARGUMENT otherwise).
func RecvExecStart(s grpc.BidiStreamingServer[providerv1.ExecRequest, providerv1.ExecResponse]) (*providerv1.ExecStart, error) {
	first, err := s.Recv()
	if err != nil {
		return nil, err
	}
	if first.GetStart() == nil || len(first.GetStart().GetCommand()) == 0 {
		return nil, status.Error(codes.InvalidArgument, "the first Exec message must be `start` with a non-empty command")
	}
	return first.GetStart(), nil
}

func exitOf(err error) *providerv1.ProcessExit {
	var ee *exec.ExitError
	switch {
	case err == nil:
		return &providerv1.ProcessExit{}
	case errors.As(err, &ee):
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return &providerv1.ProcessExit{ExitCode: 128 + int32(ws.Signal()), Message: err.Error()}
		}
		return &providerv1.ProcessExit{ExitCode: int32(ee.ExitCode())}
	case errors.Is(err, exec.ErrNotFound):
		return &providerv1.ProcessExit{ExitCode: 127, Message: err.Error()}
	default:
		return &providerv1.ProcessExit{ExitCode: 126, Message: err.Error()}
	}
}

// forwardStdin copies stdin messages to the process until stdin_close or the stream ends.
func forwardStdin(s grpc.BidiStreamingServer[providerv1.ExecRequest, providerv1.ExecResponse], w io.WriteCloser) {
	defer w.Close()
	for {
		m, err := s.Recv()
		if err != nil || m.GetStdinClose() != nil {
			return
		}
		if _, err := w.Write(m.GetStdin()); err != nil {
			return
		}
	}
}

// writerFunc adapts a function to io.Writer; os/exec copies the process's output through it.
type writerFunc func([]byte) error

func (f writerFunc) Write(b []byte) (int, error) {
	if err := f(append([]byte(nil), b...)); err != nil {
		return 0, err
	}
	return len(b), nil
}
