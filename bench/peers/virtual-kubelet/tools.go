//go:build tools

// Package peers pins upstream virtual-kubelet (with its built-in mock provider) for the
// benchmarks; scripts/build-peers.sh builds its command from this module. A wrapper module is
// needed because the Go module proxy refuses the module's version list, which
// `go install pkg@version` asks for.
package peers

import _ "github.com/virtual-kubelet/virtual-kubelet/cmd/virtual-kubelet"
