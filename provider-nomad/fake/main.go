// main.go owns the command line: flag parsing, listener setup (printing
// "listening on http://HOST:PORT" as the first stdout line once bound) and
// graceful shutdown (all task processes are killed on SIGINT/SIGTERM).
//
// fake-nomad is a test double of the HashiCorp Nomad HTTP API built on the
// MPL-2.0 github.com/hashicorp/nomad/api types. It never links the Nomad agent.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	cfg := DefaultConfig()
	fs := flag.NewFlagSet("fake-nomad", flag.ExitOnError)
	cfg.RegisterFlags(fs)
	_ = fs.Parse(os.Args[1:])

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "fake-nomad: listen %s: %v\n", cfg.Addr, err)
		os.Exit(1)
	}
	srv, err := NewServer(cfg, ln.Addr().String())
	if err != nil {
		fmt.Fprintf(os.Stderr, "fake-nomad: %v\n", err)
		os.Exit(1)
	}
	fmt.Printf("listening on http://%s\n", ln.Addr().String())
	_ = os.Stdout.Sync()

	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 30 * time.Second}
	go func() {
		sigs := make(chan os.Signal, 1)
		signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
		<-sigs
		fmt.Fprintln(os.Stderr, "fake-nomad: shutting down, killing tasks")
		srv.Shutdown()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = hs.Shutdown(ctx)
		os.Exit(0)
	}()
	if err := hs.Serve(ln); err != nil && err != http.ErrServerClosed {
		fmt.Fprintf(os.Stderr, "fake-nomad: serve: %v\n", err)
		os.Exit(1)
	}
}

// Config holds every command line setting.
type Config struct {
	Addr         string
	Token        string
	Nodes        int
	NodeCPUMHz   int
	NodeCores    int
	NodeMemoryMB int
	Datacenter   string
	NodePool     string
	Region       string
	DataDir      string
	Heartbeat    time.Duration
	StartDelay   time.Duration
	AllocIP      string
	Version      string
	Quiet        bool
}

// DefaultConfig returns the flag defaults.
func DefaultConfig() Config {
	return Config{
		Addr:         "127.0.0.1:0",
		Nodes:        1,
		NodeCPUMHz:   8000,
		NodeMemoryMB: 16384,
		Datacenter:   "dc1",
		NodePool:     "default",
		Region:       "global",
		Heartbeat:    10 * time.Second,
		AllocIP:      "127.0.0.1",
		Version:      "1.9.7",
	}
}

// RegisterFlags binds the config to a flag set.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Addr, "addr", c.Addr, "listen address (port 0 picks a free port)")
	fs.StringVar(&c.Token, "token", c.Token, "if set, every request needs X-Nomad-Token: TOKEN")
	fs.IntVar(&c.Nodes, "nodes", c.Nodes, "number of simulated client nodes")
	fs.IntVar(&c.NodeCPUMHz, "node-cpu-mhz", c.NodeCPUMHz, "CPU MHz of each node")
	fs.IntVar(&c.NodeCores, "node-cores", c.NodeCores, "CPU cores of each node (0: node-cpu-mhz/1000, at least 1)")
	fs.IntVar(&c.NodeMemoryMB, "node-memory-mb", c.NodeMemoryMB, "memory MB of each node")
	fs.StringVar(&c.Datacenter, "datacenter", c.Datacenter, "datacenter of the nodes")
	fs.StringVar(&c.NodePool, "node-pool", c.NodePool, "node pool of the nodes")
	fs.StringVar(&c.Region, "region", c.Region, "region")
	fs.StringVar(&c.DataDir, "data-dir", c.DataDir, "directory for allocation dirs (default: a new temp dir)")
	fs.DurationVar(&c.Heartbeat, "heartbeat", c.Heartbeat, "event stream heartbeat interval")
	fs.DurationVar(&c.StartDelay, "start-delay", c.StartDelay, "how long a simulated (non raw_exec) task stays pending")
	fs.StringVar(&c.AllocIP, "alloc-ip", c.AllocIP, "IP address given to allocations")
	fs.StringVar(&c.Version, "nomad-version", c.Version, "Nomad version reported by /v1/agent/self and nodes")
	fs.BoolVar(&c.Quiet, "quiet", c.Quiet, "do not log requests to stderr")
}
