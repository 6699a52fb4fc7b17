//go:build no_kubernetes

package main

import (
	"flag"
	"log/slog"

	"github.com/boxrun/boxrun/sandbox"
)

// kubeFlags is empty in a binary built with -tags no_kubernetes (no
// client-go linked; --driver kubernetes is refused).
type kubeFlags struct{}

func (k *kubeFlags) register(*flag.FlagSet, func(string) string) {}

func openKube(*kubeFlags, *slog.Logger) (sandbox.Driver, error) {
	return nil, usagef("this boxrun was built with -tags no_kubernetes: no kubernetes driver")
}
