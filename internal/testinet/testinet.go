// Package testinet builds a small "internet" for network tests: a network
// namespace on this machine, reached from the host by a veth pair and a
// route, with a Go HTTP server and a Go DNS server in it. Traffic to it never
// leaves the machine. Tests only; needs root.
package testinet

import (
	"crypto/rand"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/sys/unix"

	"github.com/boxrun/boxrun/internal/testenv"
)

// Internet is one test internet. Its names resolve (A records, TTL 60) as:
// AllowedName → Allowed, DeniedName → Denied, OtherName → Other. Every one of
// those addresses (and Addr and MetadataAddr) serves HTTP on port 80 with
// Body plus a newline.
type Internet struct {
	NS                     string     // namespace name (in /run/netns)
	Addr                   netip.Addr // the internet's main address (its DNS server)
	HostAddr               netip.Addr // the host's end of the link (a host address that is not loopback)
	Allowed, Denied, Other netip.Addr
	// MetadataAddr is a link-local address routed into the internet: what a
	// cloud metadata service would be.
	MetadataAddr netip.Addr
	DNS          string // "addr:53"
	Body         string
}

// Names of the internet's DNS zone.
const (
	AllowedName = "allowed.test"
	DeniedName  = "denied.test"
	OtherName   = "other.test"
)

// New creates an internet for t and removes it at cleanup. It skips t when
// not root or without the ip command.
func New(t testing.TB) *Internet {
	t.Helper()
	testenv.NeedRoot(t)
	ip, err := exec.LookPath("ip")
	if err != nil {
		if ip = "/usr/sbin/ip"; !exists(ip) {
			testenv.Skip(t, "testinet: ip command missing")
		}
	}
	var r [3]byte
	_, _ = rand.Read(r[:])
	// 198.18.0.0/15 is for benchmarking networks; one random /24 of it
	// per internet lets tests run in parallel.
	base := netip.AddrFrom4([4]byte{198, 18 + r[0]&1, r[1], 0})
	at := func(last byte) netip.Addr { b := base.As4(); b[3] = last; return netip.AddrFrom4(b) }
	in := &Internet{
		NS:           fmt.Sprintf("boxrun-inet-%x", r),
		Addr:         at(1),
		HostAddr:     at(254),
		Allowed:      at(10),
		Denied:       at(11),
		Other:        at(12),
		MetadataAddr: netip.AddrFrom4([4]byte{169, 254, r[2]%250 + 2, 254}),
		Body:         "hello from the test internet",
	}
	in.DNS = net.JoinHostPort(in.Addr.String(), "53")
	hostIf := fmt.Sprintf("vin%x", r)
	run := func(stdin string, args ...string) {
		t.Helper()
		cmd := exec.Command(ip, args...)
		cmd.Stdin = strings.NewReader(stdin)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("testinet: ip %v: %v: %s", args, err, out)
		}
	}
	t.Cleanup(func() {
		_ = exec.Command(ip, "netns", "del", in.NS).Run()
		_ = exec.Command(ip, "link", "del", hostIf).Run()
	})
	run(fmt.Sprintf("netns add %s\nlink add %s type veth peer name eth0 netns %s\naddr add %s/24 dev %s\nlink set %s up\nroute add %s/32 via %s\n",
		in.NS, hostIf, in.NS, in.HostAddr, hostIf, hostIf, in.MetadataAddr, in.Addr), "-batch", "-")
	var ns strings.Builder
	fmt.Fprintf(&ns, "link set lo up\nlink set eth0 up\n")
	for _, a := range []netip.Addr{in.Addr, in.Allowed, in.Denied, in.Other} {
		fmt.Fprintf(&ns, "addr add %s/24 dev eth0\n", a)
	}
	fmt.Fprintf(&ns, "addr add %s/32 dev eth0\n", in.MetadataAddr)
	run(ns.String(), "-n", in.NS, "-batch", "-")

	var ln net.Listener
	var pc net.PacketConn
	InNS(t, in.NS, func() error {
		if ln, err = net.Listen("tcp4", "0.0.0.0:80"); err != nil {
			return err
		}
		pc, err = net.ListenPacket("udp4", in.DNS)
		return err
	})
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, in.Body)
	}), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	ds := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(in.serveDNS)}
	go ds.ActivateAndServe()
	t.Cleanup(func() {
		srv.Close()
		ds.Shutdown()
		pc.Close()
	})
	return in
}

func (in *Internet) serveDNS(w dns.ResponseWriter, req *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(req)
	names := map[string]netip.Addr{AllowedName + ".": in.Allowed, DeniedName + ".": in.Denied, OtherName + ".": in.Other}
	for _, q := range req.Question {
		a, ok := names[strings.ToLower(q.Name)]
		if !ok {
			m.Rcode = dns.RcodeNameError
			continue
		}
		if q.Qtype == dns.TypeA {
			m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: a.AsSlice()})
		}
	}
	_ = w.WriteMsg(m)
}

// InNS runs fn on an OS thread that is in the network namespace ns; sockets
// fn opens live in ns. The thread is discarded afterwards.
func InNS(t testing.TB, ns string, fn func() error) {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		f, err := os.Open("/run/netns/" + ns)
		if err != nil {
			errc <- err
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- err
			return
		}
		errc <- fn()
	}()
	if err := <-errc; err != nil {
		t.Fatalf("testinet: in %s: %v", ns, err)
	}
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }
