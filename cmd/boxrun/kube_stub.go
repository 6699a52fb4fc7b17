//go:build !kubernetes

package main

import (
	"flag"
	"log/slog"

	"github.com/boxrun/boxrun/sandbox"
)

// kubeFlags is empty in a binary built without -tags kubernetes, the
// default (no client-go linked: the binary is also every gVisor box's init,
// so it stays small; --driver kubernetes is refused with the build command).
type kubeFlags struct{}

func (k *kubeFlags) register(*flag.FlagSet, func(string) string) {}

func openKube(*kubeFlags, *slog.Logger) (sandbox.Driver, error) {
	return nil, usagef("this boxrun was built without the kubernetes driver: build it with `CGO_ENABLED=0 go build -tags kubernetes ./cmd/boxrun`")
}
