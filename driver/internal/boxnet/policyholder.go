package boxnet

import "sync/atomic"

// policyHolder is the current policy of a live box, read by its resolver
// and replaced by SetPolicy.
type policyHolder struct{ p atomic.Pointer[Policy] }

func newPolicyHolder(p Policy) *policyHolder {
	h := &policyHolder{}
	h.set(p)
	return h
}

func (h *policyHolder) set(p Policy) { h.p.Store(&p) }
func (h *policyHolder) get() Policy  { return *h.p.Load() }
