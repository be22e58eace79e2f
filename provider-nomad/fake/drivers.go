// drivers.go owns the task drivers: raw_exec runs real local processes (own
// process group, stdout/stderr appended to the task's log files); every
// other driver (docker, podman, exec, java, qemu, mock_driver...) is
// simulated: it stays pending for --start-delay, then "runs" until killed, or
// until config run_for elapses, exiting with config exit_code (mirroring
// Nomad's mock_driver), and writes one line to its stdout log.
package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/nomad/api"
)

type exitResult struct {
	code   int
	signal int
	err    error
}

type driverHandle interface {
	wait() <-chan exitResult
	signal(sig syscall.Signal) error
	pid() int
}

// errDriver marks driver start failures ("Driver Failure" events).
type errDriver struct {
	msg         string
	recoverable bool
}

func (e *errDriver) Error() string { return e.msg }

func isSimulated(driver string) bool { return driver != "raw_exec" }

var signals = map[string]syscall.Signal{
	"SIGABRT": syscall.SIGABRT, "SIGALRM": syscall.SIGALRM, "SIGHUP": syscall.SIGHUP,
	"SIGINT": syscall.SIGINT, "SIGKILL": syscall.SIGKILL, "SIGQUIT": syscall.SIGQUIT,
	"SIGTERM": syscall.SIGTERM, "SIGUSR1": syscall.SIGUSR1, "SIGUSR2": syscall.SIGUSR2,
	"SIGWINCH": syscall.SIGWINCH, "SIGCONT": syscall.SIGCONT, "SIGSTOP": syscall.SIGSTOP,
}

// killSignal returns the task's kill signal: KillSignal, else SIGINT (the
// Nomad default) or SIGTERM for docker/podman.
func killSignal(t *api.Task) (syscall.Signal, string) {
	name := strings.ToUpper(t.KillSignal)
	if name != "" && !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	if s, ok := signals[name]; ok {
		return s, name
	}
	if t.Driver == "docker" || t.Driver == "podman" {
		return syscall.SIGTERM, "SIGTERM"
	}
	return syscall.SIGINT, "SIGINT"
}

func configString(cfg map[string]any, k string) string {
	switch v := cfg[k].(type) {
	case string:
		return v
	case nil:
		return ""
	default:
		return fmt.Sprint(v)
	}
}

func configStrings(cfg map[string]any, k string) []string {
	switch v := cfg[k].(type) {
	case []any:
		out := make([]string, 0, len(v))
		for _, x := range v {
			out = append(out, fmt.Sprint(x))
		}
		return out
	case []string:
		return v
	case string:
		return []string{v}
	}
	return nil
}

// ---- raw_exec ------------------------------------------------------------------

type procHandle struct {
	cmd  *exec.Cmd
	ch   chan exitResult
	once sync.Once
}

func (h *procHandle) wait() <-chan exitResult { return h.ch }
func (h *procHandle) pid() int                { return h.cmd.Process.Pid }
func (h *procHandle) signal(sig syscall.Signal) error {
	// The task runs in its own process group: signal all of it.
	if err := syscall.Kill(-h.cmd.Process.Pid, sig); err != nil {
		return h.cmd.Process.Signal(sig)
	}
	return nil
}

func startRawExec(t *api.Task, taskDir string, env []string, envMap map[string]string, node *api.Node, stdout, stderr string) (driverHandle, error) {
	command := interpolate(configString(t.Config, "command"), envMap, node)
	args := configStrings(t.Config, "args")
	for i := range args {
		args[i] = interpolate(args[i], envMap, node)
	}
	so, err := os.OpenFile(stdout, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o666)
	if err != nil {
		return nil, &errDriver{msg: fmt.Sprintf("failed to open stdout log: %v", err), recoverable: true}
	}
	defer so.Close()
	se, err := os.OpenFile(stderr, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o666)
	if err != nil {
		return nil, &errDriver{msg: fmt.Sprintf("failed to open stderr log: %v", err), recoverable: true}
	}
	defer se.Close()

	// Like the executor: a command is looked up in the task dir first, then PATH.
	path := command
	if !strings.Contains(command, "/") {
		if st, err := os.Stat(taskDir + "/" + command); err == nil && !st.IsDir() {
			path = taskDir + "/" + command
		} else if lp, err := lookPath(command, env); err == nil {
			path = lp
		} else {
			return nil, &errDriver{msg: fmt.Sprintf("failed to launch command with executor: rpc error: code = Unknown desc = exec: %q: executable file not found in $PATH", command)}
		}
	} else if !strings.HasPrefix(command, "/") {
		path = taskDir + "/" + command
	}
	cmd := exec.Command(path, args...)
	cmd.Args[0] = command
	cmd.Dir = taskDir
	cmd.Env = env
	cmd.Stdout = so
	cmd.Stderr = se
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		msg := err.Error()
		var pe *os.PathError
		if errors.As(err, &pe) {
			msg = fmt.Sprintf("fork/exec %s: %v", pe.Path, pe.Err)
		}
		return nil, &errDriver{msg: "failed to launch command with executor: rpc error: code = Unknown desc = " + msg}
	}
	h := &procHandle{cmd: cmd, ch: make(chan exitResult, 1)}
	go func() {
		err := cmd.Wait()
		res := exitResult{}
		if err != nil {
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				if ws, ok := ee.Sys().(syscall.WaitStatus); ok {
					res.code = ws.ExitStatus()
					if ws.Signaled() {
						res.signal = int(ws.Signal())
						res.code = 128 + res.signal
					}
				} else {
					res.code = 1
				}
			} else {
				res.code, res.err = 1, err
			}
		}
		// Like the executor's shutdown, reap what is left of the process group.
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		h.ch <- res
		close(h.ch)
	}()
	return h, nil
}

func lookPath(command string, env []string) (string, error) {
	pathVar := os.Getenv("PATH")
	for _, kv := range env {
		if strings.HasPrefix(kv, "PATH=") {
			pathVar = kv[5:]
		}
	}
	for _, dir := range strings.Split(pathVar, ":") {
		if dir == "" {
			dir = "."
		}
		p := dir + "/" + command
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return exec.LookPath(command)
}

// ---- simulated drivers -----------------------------------------------------

type simHandle struct {
	ch    chan exitResult
	sigCh chan syscall.Signal
}

func (h *simHandle) wait() <-chan exitResult { return h.ch }
func (h *simHandle) pid() int                { return 0 }
func (h *simHandle) signal(sig syscall.Signal) error {
	select {
	case h.sigCh <- sig:
	default:
	}
	return nil
}

func parseDurationAny(v any) time.Duration {
	switch x := v.(type) {
	case string:
		d, err := time.ParseDuration(x)
		if err == nil {
			return d
		}
		if n, err := strconv.ParseInt(x, 10, 64); err == nil {
			return time.Duration(n)
		}
	case float64:
		return time.Duration(int64(x))
	case int:
		return time.Duration(x)
	case int64:
		return time.Duration(x)
	}
	return 0
}

func intAny(v any) int {
	switch x := v.(type) {
	case float64:
		return int(x)
	case int:
		return x
	case int64:
		return int(x)
	case string:
		n, _ := strconv.Atoi(x)
		return n
	}
	return 0
}

// startSimulated starts a simulated task. The start delay is handled by the
// task runner (the task stays pending).
func startSimulated(t *api.Task, stdout string) (driverHandle, error) {
	if msg := configString(t.Config, "start_error"); msg != "" {
		rec, _ := t.Config["start_error_recoverable"].(bool)
		return nil, &errDriver{msg: msg, recoverable: rec}
	}
	image := configString(t.Config, "image")
	if image == "" {
		image = "none"
	}
	line := fmt.Sprintf("simulated %s task %s started (image %s)\n", t.Driver, t.Name, image)
	if f, err := os.OpenFile(stdout, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o666); err == nil {
		_, _ = f.WriteString(line)
		if out := configString(t.Config, "stdout_string"); out != "" {
			_, _ = f.WriteString(out)
		}
		_ = f.Close()
	}
	h := &simHandle{ch: make(chan exitResult, 1), sigCh: make(chan syscall.Signal, 4)}
	runFor := parseDurationAny(t.Config["run_for"])
	code := intAny(t.Config["exit_code"])
	go func() {
		var timer <-chan time.Time
		if runFor > 0 {
			timer = time.After(runFor)
		}
		for {
			select {
			case <-timer:
				h.ch <- exitResult{code: code}
				close(h.ch)
				return
			case sig := <-h.sigCh:
				if sig == syscall.SIGWINCH || sig == syscall.SIGCONT || sig == syscall.SIGUSR1 || sig == syscall.SIGUSR2 || sig == syscall.SIGHUP {
					continue
				}
				// A simulated workload exits gracefully on its kill signal.
				h.ch <- exitResult{code: 0}
				close(h.ch)
				return
			}
		}
	}()
	return h, nil
}
