// Command provider-batch-go is an example vk provider: a batch queue that runs pods one after
// another with a concurrency limit (simulated work; see README.md). It serves the Provider
// contract on a Unix socket with the Go SDK.
//
//	provider-batch-go --socket /run/vk/provider.sock [--slots 2] [--default-duration 30s]
package main

import (
	"context"
	"flag"
	"log/slog"
	"os"
	"time"

	"github.com/vk-project/vk/sdk/go/vkprovider"
)

func main() {
	socket := flag.String("socket", envOr("VK_PROVIDER_SOCKET", "/run/vk/provider.sock"), "Unix socket to serve on")
	slots := flag.Int("slots", 2, "how many pods run at once; the others wait in the queue")
	def := flag.Duration("default-duration", 30*time.Second, "how long a container runs when neither an annotation nor a `sleep N` command says")
	workdir := flag.String("workdir", "", "folder for the pods' scratch folders used by exec (default: a temporary folder)")
	flag.Parse()
	if *slots < 1 {
		slog.Error("--slots must be at least 1")
		os.Exit(2)
	}
	if *workdir == "" {
		dir, err := os.MkdirTemp("", "provider-batch-")
		if err != nil {
			slog.Error("creating workdir", "err", err)
			os.Exit(1)
		}
		defer os.RemoveAll(dir)
		*workdir = dir
	}
	p := newProvider(*slots, *def, *workdir)
	if err := vkprovider.Serve(context.Background(), *socket, p, &vkprovider.Options{OnShutdown: p.hub.Close}); err != nil {
		slog.Error("serve", "err", err)
		os.Exit(1)
	}
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
