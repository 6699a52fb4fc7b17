package boxnet

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// ErrUnsupported is wrapped by New when the host lacks what box networking
// needs (root, the ip and nft commands, nftables in the kernel).
var ErrUnsupported = errors.New("box networking unsupported on this host")

// ErrPortInUse is wrapped by Up when a published host port cannot be bound.
var ErrPortInUse = errors.New("host port in use")

// DefaultPool is the address pool of Config.Pool.
const DefaultPool = "10.223.0.0/16"

// lockPath serializes address allocation between every BoxRun process on
// the host (each has its own Host).
const lockPath = "/run/boxrun-net.lock"

// netnsDir is where `ip netns` keeps named namespaces.
const netnsDir = "/run/netns"

// Config configures a Host.
type Config struct {
	// Owner names whatever owns the Host's boxes (the driver's state
	// directory): names of namespaces and tables carry a tag derived from
	// it, so that Prune never touches another driver's boxes. Required.
	Owner string
	// Pool is the IPv4 range box links are allocated from, one /30 per
	// running box, shared by every driver on the host. Default DefaultPool.
	Pool string
	// DNS lists the upstream resolvers ("ip" or "ip:port") the box resolver
	// forwards to. Default: the nameservers of the host's /etc/resolv.conf.
	DNS []string
	// OnDenied receives every denied connection or lookup, from the Host's
	// goroutines (never concurrently for one box). nil drops them.
	OnDenied func(Denial)
	// Logger gets debug logs. Default: discard.
	Logger *slog.Logger
}

// Denial is a denied connection or DNS lookup of a box.
type Denial struct {
	ID          string // the box (the driver's handle)
	Destination string // "1.2.3.4:80/tcp", "1.2.3.4/icmp" or a domain name
	Rule        string // the deciding rule: "deny cidr …", "default deny", "builtin host"…
	Time        time.Time
}

// Box is the network of one running box: what Up made, and what Restore and
// Down need after a restart of the host process (callers persist it).
type Box struct {
	ID      string     `json:"id"`
	NetNS   string     `json:"netns"`   // path of the network namespace
	HostIf  string     `json:"host_if"` // host end of the veth pair
	Gateway netip.Addr `json:"gateway"` // host end address: the box's router and DNS server
	Addr    netip.Addr `json:"addr"`    // the box's address
	Policy  Policy     `json:"policy"`
	Ports   []Port     `json:"ports"` // host ports filled in
	// Tap says that HostIf is a persistent tap device for a VM's NIC
	// (UpTap) and NetNS is empty: the VM's kernel is the box's network
	// stack.
	Tap bool `json:"tap,omitempty"`
}

// Host sets up and tears down box networks. It is safe for concurrent use
// for different boxes; callers serialize calls for one box.
type Host struct {
	cfg     Config
	tag     string
	pool    netip.Prefix
	ipPath  string
	nftPath string
	dns     []string
	log     *slog.Logger
	nflog   *nflogReader

	mu   sync.Mutex
	live map[string]*liveBox

	dedupMu sync.Mutex
	dedup   map[string]time.Time // flow -> last denial (see onPacket)
}

// liveBox is what runs in this process for a box: resolver and proxies.
type liveBox struct {
	box      *Box
	policy   *policyHolder
	resolver *resolver
	proxies  []*proxy
}

// New checks the host and starts the NFLOG reader of denied packets.
func New(cfg Config) (*Host, error) {
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("boxnet: needs root: %w", ErrUnsupported)
	}
	if cfg.Owner == "" {
		return nil, fmt.Errorf("boxnet: Config.Owner is required: %w", ErrInvalid)
	}
	h := &Host{cfg: cfg, log: cfg.Logger, live: map[string]*liveBox{}}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	sum := sha256.Sum256([]byte(cfg.Owner))
	h.tag = hex.EncodeToString(sum[:3])
	pool := cfg.Pool
	if pool == "" {
		pool = DefaultPool
	}
	var err error
	if h.pool, err = netip.ParsePrefix(pool); err != nil || !h.pool.Addr().Is4() || h.pool.Bits() > 28 {
		return nil, fmt.Errorf("boxnet: pool %q: want an IPv4 prefix of /28 or wider: %w", pool, ErrInvalid)
	}
	h.pool = h.pool.Masked()
	for _, b := range []struct {
		name string
		dst  *string
	}{{"ip", &h.ipPath}, {"nft", &h.nftPath}} {
		p, err := lookPath(b.name)
		if err != nil {
			return nil, fmt.Errorf("boxnet: %s command missing (apt-get install iproute2 nftables): %w", b.name, ErrUnsupported)
		}
		*b.dst = p
	}
	if _, err := h.run(context.Background(), "", h.nftPath, "list", "tables"); err != nil {
		return nil, fmt.Errorf("boxnet: nftables unusable: %w: %w", err, ErrUnsupported)
	}
	h.dns = cfg.DNS
	if len(h.dns) == 0 {
		h.dns = hostNameservers("/etc/resolv.conf")
	}
	for i, s := range h.dns {
		if _, _, err := net.SplitHostPort(s); err != nil {
			h.dns[i] = net.JoinHostPort(s, "53")
		}
	}
	if h.nflog, err = newNflogReader(sum[:], h.onPacket, h.log); err != nil {
		return nil, fmt.Errorf("boxnet: nflog: %w: %w", err, ErrUnsupported)
	}
	return h, nil
}

// lookPath finds a command in PATH or the sbin directories (which a bare
// PATH may lack).
func lookPath(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, d := range []string{"/usr/sbin", "/sbin", "/usr/bin", "/bin"} {
		p := filepath.Join(d, name)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fs.ErrNotExist
}

// Close stops the resolvers, port proxies and the NFLOG reader of this
// process. Namespaces, links and tables stay (boxes keep running; a new
// Host restores them). Close is idempotent.
func (h *Host) Close() error {
	h.mu.Lock()
	lives := h.live
	h.live = map[string]*liveBox{}
	h.mu.Unlock()
	for _, l := range lives {
		l.stop()
	}
	if h.nflog != nil {
		h.nflog.close()
	}
	return nil
}

// NetNSName is the name of the network namespace of box id.
func (h *Host) NetNSName(id string) string { return "boxrun-" + h.tag + "-" + id }

// hostIf is the host end of the veth pair of box id (at most 15 bytes).
func hostIf(id string) string {
	if len(id) > 13 {
		id = id[:13]
	}
	return "bx" + id
}

// Up creates the network of box id: namespace, veth pair, addresses,
// policy table, resolver and published ports. policy and ports must be
// validated. A port whose HostPort is 0 gets a free one. On failure nothing
// is left.
func (h *Host) Up(ctx context.Context, id string, policy Policy, ports []Port) (b *Box, err error) {
	return h.up(ctx, id, policy, ports, false)
}

// UpTap is Up for a virtual machine: instead of a namespace and a veth
// pair, the box's host link is a persistent tap device named as the veth's
// host end would be (Box.HostIf), with the gateway address; the VM's NIC
// attaches to it (QEMU: -netdev tap,ifname=…,script=no) and the guest
// kernel configures Box.Addr/30 with the gateway as its route and
// resolver. Policy, resolver, ports, NFLOG denials, Restore, SetPolicy,
// Down and Prune are those of Up: the table matches the host link, not
// the namespace. The table is made before the tap, so Prune finds a tap
// that a crash left behind by its table.
func (h *Host) UpTap(ctx context.Context, id string, policy Policy, ports []Port) (b *Box, err error) {
	return h.up(ctx, id, policy, ports, true)
}

func (h *Host) up(ctx context.Context, id string, policy Policy, ports []Port, tap bool) (b *Box, err error) {
	b = &Box{ID: id, HostIf: hostIf(id), Policy: policy, Tap: tap}
	if !tap {
		b.NetNS = filepath.Join(netnsDir, h.NetNSName(id))
	}
	defer func() {
		if err != nil {
			if derr := h.Down(context.WithoutCancel(ctx), id); derr != nil {
				h.log.Warn("boxnet: cleanup after failed up", "box", id, "err", derr)
			}
		}
	}()
	l := &liveBox{box: b, policy: newPolicyHolder(policy)}
	h.mu.Lock()
	h.live[id] = l
	h.mu.Unlock()
	// Ports first: a taken one fails before anything exists.
	if err := h.listenPorts(l, ports); err != nil {
		return nil, err
	}
	if err := h.plumb(ctx, b); err != nil {
		return nil, err
	}
	if !tap {
		if err := h.nft(ctx, h.ruleset(b, policy, true)); err != nil {
			return nil, err
		}
	}
	if err := h.startResolver(l); err != nil {
		return nil, err
	}
	l.serve(b.Addr)
	h.log.Debug("boxnet: up", "box", id, "addr", b.Addr, "ports", b.Ports)
	return b, nil
}

// plumb allocates the box's /30, creates the namespace and the veth pair and
// configures both ends; for a tap box, it installs the box's table and
// creates the tap with the gateway address.
func (h *Host) plumb(ctx context.Context, b *Box) error {
	if err := enableForwarding(); err != nil {
		return err
	}
	lock, err := os.OpenFile(lockPath, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("boxnet: %w", err)
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		return fmt.Errorf("boxnet: lock: %w", err)
	}
	defer unix.Flock(int(lock.Fd()), unix.LOCK_UN)
	if b.Gateway, b.Addr, err = h.allocate(); err != nil {
		return err
	}
	if b.Tap {
		if err := h.nft(ctx, h.ruleset(b, b.Policy, true)); err != nil {
			return err
		}
		script := fmt.Sprintf("tuntap add dev %s mode tap\naddr add %s/30 dev %s\n", b.HostIf, b.Gateway, b.HostIf)
		if _, err := h.run(ctx, script, h.ipPath, "-batch", "-"); err != nil {
			return err
		}
		_ = os.WriteFile("/proc/sys/net/ipv6/conf/"+b.HostIf+"/disable_ipv6", []byte("1"), 0o644)
		_, err = h.run(ctx, "", h.ipPath, "link", "set", b.HostIf, "up")
		return err
	}
	name := h.NetNSName(b.ID)
	hostScript := fmt.Sprintf("netns add %s\nlink add %s type veth peer name eth0 netns %s\naddr add %s/30 dev %s\nlink set %s up\n",
		name, b.HostIf, name, b.Gateway, b.HostIf, b.HostIf)
	if _, err := h.run(ctx, hostScript, h.ipPath, "-batch", "-"); err != nil {
		return err
	}
	_ = os.WriteFile("/proc/sys/net/ipv6/conf/"+b.HostIf+"/disable_ipv6", []byte("1"), 0o644)
	nsScript := fmt.Sprintf("link set lo up\naddr add %s/30 dev eth0\nlink set eth0 up\nroute add default via %s\n", b.Addr, b.Gateway)
	_, err = h.run(ctx, nsScript, h.ipPath, "-n", name, "-batch", "-")
	return err
}

// allocate picks a free /30 of the pool: one that no host interface has an
// address in. Called with the host-wide lock held.
func (h *Host) allocate() (gw, addr netip.Addr, err error) {
	used := map[uint32]bool{}
	ifAddrs, err := net.InterfaceAddrs()
	if err != nil {
		return gw, addr, fmt.Errorf("boxnet: %w", err)
	}
	base := binary.BigEndian.Uint32(h.pool.Addr().AsSlice())
	n := uint32(1) << (32 - h.pool.Bits()) / 4
	for _, a := range ifAddrs {
		ipn, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		ip, ok := netip.AddrFromSlice(ipn.IP.To4())
		if !ok || !h.pool.Contains(ip) {
			continue
		}
		used[(binary.BigEndian.Uint32(ip.AsSlice())-base)/4] = true
	}
	var r [4]byte
	_, _ = rand.Read(r[:])
	start := binary.BigEndian.Uint32(r[:]) % n
	for i := uint32(0); i < n; i++ {
		idx := (start + i) % n
		if idx == 0 || used[idx] {
			continue // the first /30 holds the pool's network address
		}
		g := base + idx*4 + 1
		return u32Addr(g), u32Addr(g + 1), nil
	}
	return gw, addr, fmt.Errorf("boxnet: address pool %s exhausted", h.pool)
}

func u32Addr(v uint32) netip.Addr {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], v)
	return netip.AddrFrom4(b)
}

// enableForwarding turns on IPv4 forwarding (needed for NAT egress).
func enableForwarding() error {
	const p = "/proc/sys/net/ipv4/ip_forward"
	if b, err := os.ReadFile(p); err == nil && bytes.Equal(bytes.TrimSpace(b), []byte("1")) {
		return nil
	}
	if err := os.WriteFile(p, []byte("1"), 0o644); err != nil {
		return fmt.Errorf("boxnet: enable ip_forward: %w", err)
	}
	return nil
}

// Restore brings back what lives in this process for a running box after a
// restart (policy table, resolver, port proxies), from what Up returned.
// A port that cannot be bound again is an error; the rest is restored.
func (h *Host) Restore(ctx context.Context, b *Box) error {
	l := &liveBox{box: b, policy: newPolicyHolder(b.Policy)}
	h.mu.Lock()
	if old := h.live[b.ID]; old != nil {
		old.stop()
	}
	h.live[b.ID] = l
	h.mu.Unlock()
	var errs []error
	if err := h.nft(ctx, h.ruleset(b, b.Policy, true)); err != nil {
		errs = append(errs, err)
	}
	ports := b.Ports
	b.Ports = nil
	if err := h.listenPorts(l, ports); err != nil {
		errs = append(errs, err)
	}
	if err := h.startResolver(l); err != nil {
		errs = append(errs, err)
	}
	l.serve(b.Addr)
	return errors.Join(errs...)
}

// SetPolicy replaces the policy of a running box at once: the table is
// replaced in one transaction (pinned addresses are dropped: names are
// decided again at the next lookup). p must be validated.
func (h *Host) SetPolicy(ctx context.Context, b *Box, p Policy) error {
	if err := h.nft(ctx, h.ruleset(b, p, true)); err != nil {
		return err
	}
	b.Policy = p
	h.mu.Lock()
	l := h.live[b.ID]
	h.mu.Unlock()
	if l != nil {
		l.policy.set(p)
	}
	return nil
}

// Down removes the network of box id: proxies, resolver, table, namespace
// (and with it the veth pair). What is already gone is not an error.
func (h *Host) Down(ctx context.Context, id string) error {
	h.mu.Lock()
	l := h.live[id]
	delete(h.live, id)
	h.mu.Unlock()
	if l != nil {
		l.stop()
	}
	var errs []error
	if err := h.deleteTable(ctx, id); err != nil {
		errs = append(errs, err)
	}
	if err := h.deleteNetNS(ctx, h.NetNSName(id)); err != nil {
		errs = append(errs, err)
	}
	// A veth whose namespace is gone went with it; one left by a crash
	// between the two steps of plumb goes here.
	// The kernel removes the host end of a veth asynchronously after its
	// peer's namespace went, so a link that vanished under `ip link del`
	// is gone, not an error.
	if _, err := net.InterfaceByName(hostIf(id)); err == nil {
		if _, err := h.run(ctx, "", h.ipPath, "link", "del", hostIf(id)); err != nil {
			if _, still := net.InterfaceByName(hostIf(id)); still == nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

func (h *Host) deleteNetNS(ctx context.Context, name string) error {
	if _, err := os.Stat(filepath.Join(netnsDir, name)); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	_, err := h.run(ctx, "", h.ipPath, "netns", "del", name)
	return err
}

// Prune removes the networks of this Host's boxes whose id is not in keep:
// namespaces, links and tables left by a crash.
func (h *Host) Prune(ctx context.Context, keep map[string]bool) error {
	var errs []error
	prefix := h.NetNSName("")
	if ents, err := os.ReadDir(netnsDir); err == nil {
		for _, e := range ents {
			if id, ok := strings.CutPrefix(e.Name(), prefix); ok && !keep[id] {
				errs = append(errs, h.Down(ctx, id))
			}
		}
	}
	ids, err := h.tables(ctx)
	errs = append(errs, err)
	for _, id := range ids {
		if !keep[id] {
			errs = append(errs, h.Down(ctx, id))
		}
	}
	return errors.Join(errs...)
}

// Owned lists the ids of boxes that have a namespace or a table of this
// Host on the host (for tests and Prune checks).
func (h *Host) Owned(ctx context.Context) ([]string, error) {
	seen := map[string]bool{}
	var ids []string
	prefix := h.NetNSName("")
	if ents, err := os.ReadDir(netnsDir); err == nil {
		for _, e := range ents {
			if id, ok := strings.CutPrefix(e.Name(), prefix); ok && !seen[id] {
				seen[id] = true
				ids = append(ids, id)
			}
		}
	}
	tids, err := h.tables(ctx)
	for _, id := range tids {
		if !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	return ids, err
}

// run runs a host command with stdin and returns its output.
func (h *Host) run(ctx context.Context, stdin, path string, args ...string) ([]byte, error) {
	tctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(tctx, path, args...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Run(); err != nil {
		return out.Bytes(), fmt.Errorf("boxnet: %s %s: %w: %s", filepath.Base(path), strings.Join(args, " "), err, bytes.TrimSpace(out.Bytes()))
	}
	return out.Bytes(), nil
}

// hostNameservers reads the nameservers of a resolv.conf.
func hostNameservers(path string) []string {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "nameserver" {
			if a, err := netip.ParseAddr(f[1]); err == nil && a.Is4() {
				out = append(out, a.String())
			}
		}
	}
	return out
}

func (l *liveBox) stop() {
	if l.resolver != nil {
		l.resolver.close()
	}
	for _, p := range l.proxies {
		p.close()
	}
}
