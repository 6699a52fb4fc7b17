package sandbox

import (
	"context"
	"time"

	"github.com/boxrun/boxrun/boxapi"
)

// NetDenial is a denied connection or DNS lookup of a sandbox, reported by a
// NetworkDriver.
type NetDenial struct {
	Handle      string    // the sandbox
	Destination string    // "1.2.3.4:80/tcp", "1.2.3.4/icmp" or a domain name
	Rule        string    // the deciding rule, e.g. "deny cidr 10.0.0.0/8", "default deny"
	Time        time.Time // when it was denied
}

// NetworkDriver is implemented by drivers that give boxes their own
// network with egress policy and published ports. The Manager
// type-asserts it; drivers without it only know Spec.Network.
type NetworkDriver interface {
	// SetEgress replaces the egress policy of a sandbox (running or not);
	// on a running one it takes effect at once. A bad policy is an error
	// wrapping boxapi.ErrInvalid.
	SetEgress(ctx context.Context, handle string, p boxapi.EgressPolicy) error
	// NetInfo reports the network of a sandbox.
	NetInfo(ctx context.Context, handle string) (boxapi.NetInfo, error)
	// OnNetDenied sets the function that receives every denial (nil: none).
	// It is called from the driver's goroutines and must not block long.
	OnNetDenied(fn func(NetDenial))
}
