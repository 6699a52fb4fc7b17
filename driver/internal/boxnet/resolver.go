package boxnet

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// resolver is the DNS server of one box, on its gateway address (UDP and
// TCP port 53). It decides every question by the box's policy, forwards
// allowed ones upstream, pins the IPv4 addresses that a domain allow rule
// let through into the box's table, and answers denied names with REFUSED
// (and a Denial). AAAA questions get an empty answer: boxes are IPv4-only.
type resolver struct {
	h       *Host
	l       *liveBox
	servers []*dns.Server
	wg      sync.WaitGroup
}

// startResolver listens on the gateway of l's box and serves it.
func (h *Host) startResolver(l *liveBox) error {
	r := &resolver{h: h, l: l}
	addr := net.JoinHostPort(l.box.Gateway.String(), "53")
	pc, err := net.ListenPacket("udp4", addr)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp4", addr)
	if err != nil {
		pc.Close()
		return err
	}
	r.servers = []*dns.Server{
		{PacketConn: pc, Handler: r, UDPSize: dns.DefaultMsgSize},
		{Listener: ln, Handler: r, ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second},
	}
	for _, s := range r.servers {
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			_ = s.ActivateAndServe()
		}()
	}
	l.resolver = r
	return nil
}

func (r *resolver) close() {
	for _, s := range r.servers {
		_ = s.Shutdown()
		if s.PacketConn != nil {
			s.PacketConn.Close()
		}
		if s.Listener != nil {
			s.Listener.Close()
		}
	}
	r.wg.Wait()
}

// ServeDNS answers one query of the box.
func (r *resolver) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	resp := r.answer(req, w.RemoteAddr().Network())
	_ = w.WriteMsg(resp)
}

// answer decides and answers req.
func (r *resolver) answer(req *dns.Msg, network string) *dns.Msg {
	resp := new(dns.Msg)
	if req.Opcode != dns.OpcodeQuery || len(req.Question) != 1 {
		resp.SetRcode(req, dns.RcodeNotImplemented)
		return resp
	}
	q := req.Question[0]
	name := strings.TrimSuffix(strings.ToLower(q.Name), ".")
	p := r.l.policy.get()
	rule := matchDomain(p, name)
	allowed := p.Default == Allow
	decided := "default " + p.Default
	if rule >= 0 {
		allowed = p.Rules[rule].Action == Allow
		decided = ruleName(p.Rules[rule])
	}
	if !allowed {
		if now := time.Now(); !r.h.repeated(r.l.box.ID+" dns "+name, now, dnsDedupWindow) {
			r.h.deny(Denial{ID: r.l.box.ID, Destination: name, Rule: decided, Time: now})
		}
		resp.SetRcode(req, dns.RcodeRefused)
		return resp
	}
	if q.Qclass != dns.ClassINET || (q.Qtype != dns.TypeA && q.Qtype != dns.TypeCNAME) {
		// Only IPv4 names leave the host; the box gets an empty answer.
		resp.SetReply(req)
		return resp
	}
	up, err := r.forward(req, network)
	if err != nil {
		resp.SetRcode(req, dns.RcodeServerFailure)
		return resp
	}
	if rule >= 0 {
		var addrs []netip.Addr
		ttl := uint32(300)
		for _, rr := range up.Answer {
			if a, ok := rr.(*dns.A); ok {
				if ip, ok := netip.AddrFromSlice(a.A.To4()); ok {
					addrs = append(addrs, ip)
					ttl = min(ttl, a.Hdr.Ttl)
				}
			}
		}
		// Pinned before the box sees the answer, so its connect finds them.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := r.h.pin(ctx, r.l.box.ID, addrs, ttl); err != nil {
			r.h.log.Warn("boxnet: pin", "box", r.l.box.ID, "err", err)
			resp.SetRcode(req, dns.RcodeServerFailure)
			return resp
		}
	}
	up.Id = req.Id
	return up
}

// forward asks the upstream resolvers in turn.
func (r *resolver) forward(req *dns.Msg, network string) (*dns.Msg, error) {
	if len(r.h.dns) == 0 {
		return nil, errors.New("no upstream resolver")
	}
	var lastErr error
	for _, up := range r.h.dns {
		c := &dns.Client{Net: "udp", Timeout: 3 * time.Second}
		m, _, err := c.Exchange(req.Copy(), up)
		if err == nil && m.Truncated {
			c.Net = "tcp"
			m, _, err = c.Exchange(req.Copy(), up)
		}
		if err == nil {
			return m, nil
		}
		lastErr = err
	}
	return nil, lastErr
}
