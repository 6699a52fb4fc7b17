package boxnet

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// nfnetlink_log constants (linux/netfilter/nfnetlink_log.h).
const (
	nfnlSubsysULOG   = 4
	nfulnlMsgPacket  = 0
	nfulnlMsgConfig  = 1
	nfulaCfgCmd      = 1
	nfulaCfgMode     = 2
	nfulaCfgQThresh  = 4
	nfulaPayload     = 9
	nfulaPrefix      = 10
	nfulnlCmdBind    = 1
	nfulnlCopyPacket = 2
	// copyRange is how much of a packet the kernel copies: the IPv4 and
	// transport headers.
	copyRange = 64
)

// nflogReader receives the packets the box tables log (every denied
// connection attempt) on one NFLOG group, which it owns on this host.
type nflogReader struct {
	fd     int
	group  uint16
	onPkt  func(prefix string, pkt []byte)
	log    *slog.Logger
	closed atomic.Bool
	done   chan struct{}
	once   sync.Once
}

// newNflogReader binds a free NFLOG group, starting from one derived from
// seed (so a restarted process usually gets the same one), and starts
// reading it.
func newNflogReader(seed []byte, onPkt func(string, []byte), log *slog.Logger) (*nflogReader, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_NETFILTER)
	if err != nil {
		return nil, err
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return nil, err
	}
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 1<<20)
	r := &nflogReader{fd: fd, onPkt: onPkt, log: log, done: make(chan struct{})}
	start := 1000 + binary.BigEndian.Uint16(seed)%30000
	for i := uint16(0); i < 200; i++ {
		g := start + i
		if err := r.config(g, nlAttr(nfulaCfgCmd, []byte{nfulnlCmdBind})); err != nil {
			continue // another process owns g
		}
		mode := make([]byte, 6)
		binary.BigEndian.PutUint32(mode, copyRange)
		mode[4] = nfulnlCopyPacket
		qt := make([]byte, 4)
		binary.BigEndian.PutUint32(qt, 1)
		if err := r.config(g, append(nlAttr(nfulaCfgMode, mode), nlAttr(nfulaCfgQThresh, qt)...)); err != nil {
			unix.Close(fd)
			return nil, err
		}
		r.group = g
		tv := unix.Timeval{Usec: 200000}
		_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
		go r.loop()
		return r, nil
	}
	unix.Close(fd)
	return nil, errors.New("no free NFLOG group")
}

// nlAttr encodes one netlink attribute, padded to 4 bytes.
func nlAttr(typ uint16, data []byte) []byte {
	l := 4 + len(data)
	b := make([]byte, (l+3)&^3)
	binary.NativeEndian.PutUint16(b[0:], uint16(l))
	binary.NativeEndian.PutUint16(b[2:], typ)
	copy(b[4:], data)
	return b
}

// config sends one config message for group and waits for its ack.
func (r *nflogReader) config(group uint16, attrs []byte) error {
	msg := make([]byte, 16+4+len(attrs))
	binary.NativeEndian.PutUint32(msg[0:], uint32(len(msg)))
	binary.NativeEndian.PutUint16(msg[4:], nfnlSubsysULOG<<8|nfulnlMsgConfig)
	binary.NativeEndian.PutUint16(msg[6:], unix.NLM_F_REQUEST|unix.NLM_F_ACK)
	binary.NativeEndian.PutUint32(msg[8:], uint32(group))
	msg[16] = unix.AF_UNSPEC
	msg[17] = 0 // NFNETLINK_V0
	binary.BigEndian.PutUint16(msg[18:], group)
	copy(msg[20:], attrs)
	if err := unix.Sendto(r.fd, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return err
	}
	buf := make([]byte, 4096)
	for {
		n, _, err := unix.Recvfrom(r.fd, buf, 0)
		if err != nil {
			return err
		}
		for b := buf[:n]; len(b) >= 16; {
			l := int(binary.NativeEndian.Uint32(b[0:]))
			if l < 16 || l > len(b) {
				break
			}
			if binary.NativeEndian.Uint16(b[4:]) == unix.NLMSG_ERROR && l >= 20 {
				if e := int32(binary.NativeEndian.Uint32(b[16:])); e != 0 {
					return fmt.Errorf("nflog config: %w", unix.Errno(-e))
				}
				return nil
			}
			b = b[(l+3)&^3:]
		}
	}
}

func (r *nflogReader) loop() {
	defer close(r.done)
	buf := make([]byte, 1<<16)
	for !r.closed.Load() {
		n, _, err := unix.Recvfrom(r.fd, buf, 0)
		if err != nil {
			if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) || errors.Is(err, unix.ENOBUFS) {
				continue
			}
			r.log.Warn("boxnet: nflog read", "err", err)
			return
		}
		r.parse(buf[:n])
	}
}

// parse handles a batch of netlink messages.
func (r *nflogReader) parse(b []byte) {
	for len(b) >= 16 {
		l := int(binary.NativeEndian.Uint32(b[0:]))
		if l < 16 || l > len(b) {
			return
		}
		if binary.NativeEndian.Uint16(b[4:]) == nfnlSubsysULOG<<8|nfulnlMsgPacket && l >= 20 {
			var prefix string
			var payload []byte
			for a := b[20:l]; len(a) >= 4; {
				al := int(binary.NativeEndian.Uint16(a[0:]))
				if al < 4 || al > len(a) {
					break
				}
				switch binary.NativeEndian.Uint16(a[2:]) & 0x3fff {
				case nfulaPrefix:
					prefix = strings.TrimRight(string(a[4:al]), "\x00")
				case nfulaPayload:
					payload = a[4:al]
				}
				a = a[min((al+3)&^3, len(a)):]
			}
			if prefix != "" {
				r.onPkt(prefix, payload)
			}
		}
		b = b[min((l+3)&^3, len(b)):]
	}
}

func (r *nflogReader) close() {
	r.once.Do(func() {
		r.closed.Store(true)
		<-r.done
		unix.Close(r.fd)
	})
}

// describePacket returns "dst:port/proto" of an IPv4 packet, and a key that
// identifies its flow (for de-duplication of retries).
func describePacket(pkt []byte) (dest, flow string) {
	if len(pkt) < 20 || pkt[0]>>4 != 4 {
		return "unknown", ""
	}
	ihl := int(pkt[0]&0xf) * 4
	dst, _ := netip.AddrFromSlice(pkt[16:20])
	proto := pkt[9]
	switch proto {
	case unix.IPPROTO_TCP, unix.IPPROTO_UDP:
		name := "tcp"
		if proto == unix.IPPROTO_UDP {
			name = "udp"
		}
		if len(pkt) >= ihl+4 {
			sport := binary.BigEndian.Uint16(pkt[ihl:])
			dport := binary.BigEndian.Uint16(pkt[ihl+2:])
			d := fmt.Sprintf("%s:%d/%s", dst, dport, name)
			return d, fmt.Sprintf("%s %d", d, sport)
		}
		return fmt.Sprintf("%s/%s", dst, name), ""
	case unix.IPPROTO_ICMP:
		return dst.String() + "/icmp", ""
	}
	return fmt.Sprintf("%s/%d", dst, proto), ""
}

// onPacket turns a logged packet into a Denial. Retries of one flow (same
// box, destination and source port) within dedupWindow are one denial.
func (h *Host) onPacket(prefix string, pkt []byte) {
	f := strings.Fields(prefix)
	if len(f) != 3 || f[0] != "boxrun" {
		return
	}
	id, tag := f[1], f[2]
	dest, flow := describePacket(pkt)
	now := time.Now()
	if flow != "" && h.repeated(id+" "+flow, now, dedupWindow) {
		return
	}
	rule := "builtin " + tag
	switch {
	case tag == "default":
		rule = "default deny"
	case tag == "builtin":
		rule = "builtin: loopback, link-local, multicast or another box"
	case tag == "host":
		rule = "builtin: the host"
	case strings.HasPrefix(tag, "r"):
		h.mu.Lock()
		l := h.live[id]
		h.mu.Unlock()
		var i int
		if _, err := fmt.Sscanf(tag, "r%d", &i); err == nil && l != nil {
			if p := l.policy.get(); i >= 0 && i < len(p.Rules) {
				rule = ruleName(p.Rules[i])
			}
		}
	}
	h.deny(Denial{ID: id, Destination: dest, Rule: rule, Time: now})
}

// dedupWindow is how long retries of one denied flow count as one denial;
// dnsDedupWindow the same for lookups of one name (a resolver library asks
// for A and AAAA, and retries).
const (
	dedupWindow    = 10 * time.Second
	dnsDedupWindow = 2 * time.Second
)

// repeated reports whether key was seen less than window before now, and
// records it.
func (h *Host) repeated(key string, now time.Time, window time.Duration) bool {
	h.dedupMu.Lock()
	defer h.dedupMu.Unlock()
	if h.dedup == nil {
		h.dedup = map[string]time.Time{}
	}
	last, seen := h.dedup[key]
	h.dedup[key] = now
	if len(h.dedup) > 4096 {
		for k, t := range h.dedup {
			if now.Sub(t) > dedupWindow {
				delete(h.dedup, k)
			}
		}
	}
	return seen && now.Sub(last) < window
}

// deny reports d to Config.OnDenied.
func (h *Host) deny(d Denial) {
	h.log.Debug("boxnet: denied", "box", d.ID, "dest", d.Destination, "rule", d.Rule)
	if h.cfg.OnDenied != nil {
		h.cfg.OnDenied(d)
	}
}
