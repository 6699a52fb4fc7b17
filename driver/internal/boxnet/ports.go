package boxnet

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// proxy forwards one published TCP port: a listener on the host, a
// connection to the box's address per accepted client. Traffic from the
// host into the box is allowed by the box's table (only replies may leave
// the box toward the host).
type proxy struct {
	ln     net.Listener
	target string
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  map[net.Conn]bool
	closed bool
}

// listenPorts binds every published port of l's box (filling in random
// host ports) and starts their proxies. It binds all before serving any,
// and on failure closes what it bound.
func (h *Host) listenPorts(l *liveBox, ports []Port) error {
	var lns []net.Listener
	for _, p := range ports {
		ln, err := net.Listen("tcp4", net.JoinHostPort(p.HostIP, strconv.Itoa(p.HostPort)))
		if err != nil {
			for _, ln := range lns {
				ln.Close()
			}
			if errors.Is(err, syscall.EADDRINUSE) || errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.EADDRNOTAVAIL) {
				return fmt.Errorf("boxnet: publish %s:%d -> %d: %w: %w", p.HostIP, p.HostPort, p.BoxPort, err, ErrPortInUse)
			}
			return fmt.Errorf("boxnet: publish %s:%d: %w", p.HostIP, p.HostPort, err)
		}
		lns = append(lns, ln)
	}
	for i, p := range ports {
		p.HostPort = lns[i].Addr().(*net.TCPAddr).Port
		l.box.Ports = append(l.box.Ports, p)
		px := &proxy{ln: lns[i], conns: map[net.Conn]bool{}}
		l.proxies = append(l.proxies, px)
	}
	return nil
}

// serve starts the proxies of l once the box has an address.
func (l *liveBox) serve(addr netip.Addr) {
	for i, px := range l.proxies {
		px.target = net.JoinHostPort(addr.String(), strconv.Itoa(l.box.Ports[i].BoxPort))
		px.wg.Add(1)
		go px.loop()
	}
}

func (p *proxy) loop() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		if !p.track(c, true) {
			c.Close()
			return
		}
		p.wg.Add(1)
		go p.forward(c)
	}
}

func (p *proxy) track(c net.Conn, add bool) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if add {
		if p.closed {
			return false
		}
		p.conns[c] = true
	} else {
		delete(p.conns, c)
	}
	return true
}

func (p *proxy) forward(c net.Conn) {
	defer p.wg.Done()
	defer c.Close()
	b, err := net.DialTimeout("tcp4", p.target, 5*time.Second)
	if err != nil {
		return
	}
	defer b.Close()
	if !p.track(b, true) {
		return
	}
	defer p.track(b, false)
	defer p.track(c, false)
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		if tc, ok := dst.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
		done <- struct{}{}
	}
	go pipe(b, c)
	go pipe(c, b)
	<-done
	<-done
}

// close stops accepting, cuts every forwarded connection and waits for the
// proxy's goroutines.
func (p *proxy) close() {
	p.mu.Lock()
	p.closed = true
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.ln.Close()
	p.wg.Wait()
}
