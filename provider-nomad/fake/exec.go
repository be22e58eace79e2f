// exec.go owns `nomad alloc exec`: the WebSocket endpoint
// /v1/client/allocation/{alloc}/exec speaking the api.ExecStreamingInput /
// api.ExecStreamingOutput JSON frames. The command really runs on the host,
// in the task directory with the task's environment, for every driver
// (simulated drivers have no container to enter), under a pty when tty=true.
// Errors are sent as a WebSocket close frame whose code is 4000+HTTP status
// (1011 for 500), as the Nomad agent does.
package main

import (
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/creack/pty"
	"github.com/gorilla/websocket"
	"github.com/hashicorp/nomad/api"
)

var upgrader = websocket.Upgrader{
	ReadBufferSize: 4096, WriteBufferSize: 4096,
	CheckOrigin: func(*http.Request) bool { return true },
}

type wsWriter struct {
	mu   sync.Mutex
	conn *websocket.Conn
}

func (w *wsWriter) send(v *api.ExecStreamingOutput) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.conn.WriteJSON(v)
}

func (w *wsWriter) closeWith(code int, msg string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	_ = w.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, msg), time.Now().Add(time.Second))
}

// frameWriter turns writes into stdout/stderr frames.
type frameWriter struct {
	ws     *wsWriter
	stderr bool
}

func (f *frameWriter) Write(p []byte) (int, error) {
	op := &api.ExecStreamingIOOperation{Data: append([]byte(nil), p...)}
	out := &api.ExecStreamingOutput{Stdout: op}
	if f.stderr {
		out = &api.ExecStreamingOutput{Stderr: op}
	}
	if err := f.ws.send(out); err != nil {
		return 0, err
	}
	return len(p), nil
}

func wsCode(httpCode int) int {
	if httpCode == 500 {
		return websocket.CloseInternalServerErr
	}
	return 4000 + httpCode
}

func (s *Server) handleExec(w http.ResponseWriter, r *http.Request) {
	conn, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	defer conn.Close()
	ws := &wsWriter{conn: conn}
	fail := func(err error) {
		code := 500
		var he *httpError
		if errors.As(err, &he) {
			code = he.code
		}
		ws.closeWith(wsCode(code), err.Error())
	}
	q := r.URL.Query()
	ar, err := s.lookupAlloc(r.PathValue("alloc"))
	if err != nil {
		fail(err)
		return
	}
	taskName := q.Get("task")
	tr := ar.byName[taskName]
	if taskName == "" || tr == nil {
		fail(errf(400, "unknown task name %q", taskName))
		return
	}
	tty, _ := strconv.ParseBool(q.Get("tty"))
	var command []string
	if c := q.Get("command"); c == "" || json.Unmarshal([]byte(c), &command) != nil || len(command) == 0 {
		fail(errf(400, "command is not present"))
		return
	}
	if st, _ := tr.snapshot(); st != "running" {
		fail(errf(404, "task %q is not running.", taskName))
		return
	}
	_, env, dir := tr.currentHandle()

	path, err := lookPath(command[0], env)
	if err != nil {
		fail(errf(500, "failed to exec into task: rpc error: code = Unknown desc = exec: %q: executable file not found in $PATH", command[0]))
		return
	}
	cmd := exec.Command(path, command[1:]...)
	cmd.Args[0] = command[0]
	cmd.Dir = dir
	cmd.Env = env

	var stdinW interface {
		Write([]byte) (int, error)
		Close() error
	}
	var ptmx *os.File
	outDone := make(chan struct{})
	if tty {
		ptmx, err = pty.StartWithSize(cmd, &pty.Winsize{Rows: 24, Cols: 80})
		if err != nil {
			fail(errf(500, "failed to exec into task: %v", err))
			return
		}
		defer ptmx.Close()
		go func() {
			defer close(outDone)
			buf := make([]byte, 32*1024)
			fw := &frameWriter{ws: ws}
			for {
				n, err := ptmx.Read(buf)
				if n > 0 {
					if _, werr := fw.Write(buf[:n]); werr != nil {
						return
					}
				}
				if err != nil {
					return
				}
			}
		}()
		stdinW = ptmxStdin{ptmx}
	} else {
		cmd.Stdout = &frameWriter{ws: ws}
		cmd.Stderr = &frameWriter{ws: ws, stderr: true}
		cmd.WaitDelay = time.Second
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		in, err := cmd.StdinPipe()
		if err != nil {
			fail(errf(500, "failed to exec into task: %v", err))
			return
		}
		stdinW = in
		if err := cmd.Start(); err != nil {
			fail(errf(500, "failed to exec into task: %v", err))
			return
		}
		close(outDone)
	}

	// Input pump: stdin, tty resizes and heartbeats from the client.
	clientGone := make(chan struct{})
	go func() {
		defer close(clientGone)
		for {
			var in api.ExecStreamingInput
			if err := conn.ReadJSON(&in); err != nil {
				return
			}
			switch {
			case in.Stdin != nil:
				if len(in.Stdin.Data) > 0 {
					_, _ = stdinW.Write(in.Stdin.Data)
				}
				if in.Stdin.Close {
					_ = stdinW.Close()
				}
			case in.TTYSize != nil && ptmx != nil:
				_ = pty.Setsize(ptmx, &pty.Winsize{Rows: uint16(in.TTYSize.Height), Cols: uint16(in.TTYSize.Width)})
			}
		}
	}()
	waitCh := make(chan error, 1)
	go func() { waitCh <- cmd.Wait() }()
	var werr error
	select {
	case werr = <-waitCh:
	case <-clientGone:
		if cmd.Process != nil {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			_ = cmd.Process.Kill()
		}
		<-waitCh
		return
	}
	if tty {
		select {
		case <-outDone:
		case <-time.After(time.Second):
		}
	}
	code := 0
	if werr != nil {
		var ee *exec.ExitError
		if errors.As(werr, &ee) {
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				code = 128 + int(ws.Signal())
			} else {
				code = ee.ExitCode()
			}
		} else {
			code = 1
		}
	}
	_ = ws.send(&api.ExecStreamingOutput{Exited: true, Result: &api.ExecStreamingExitResult{ExitCode: code}})
	ws.closeWith(websocket.CloseNormalClosure, "")
	// Give the client a moment to read the exit frame before closing.
	select {
	case <-clientGone:
	case <-time.After(2 * time.Second):
	}
}

// ptmxStdin writes to the pty; Close sends EOT (^D), as there is no
// half-close on a terminal.
type ptmxStdin struct{ f *os.File }

func (p ptmxStdin) Write(b []byte) (int, error) { return p.f.Write(b) }
func (p ptmxStdin) Close() error {
	_, err := p.f.Write([]byte{4})
	return err
}
