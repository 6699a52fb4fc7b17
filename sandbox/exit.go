package sandbox

import "context"

// ExitReasoner is implemented by drivers that can tell why a sandbox stopped
// on its own (not through Stop or Remove). The Manager notices such a death
// by polling State (about twice a second for running boxes), then asks the
// reason once, before it stops the sandbox to release what it still holds
// (Stop on a dead sandbox only cleans up). ExitReason returns a short text
// for users, e.g. "out of memory", or "" when it does not know. It must be
// safe to call concurrently with every other method.
type ExitReasoner interface {
	ExitReason(ctx context.Context, handle string) string
}
