//go:build linux

package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"syscall"
	"unsafe"

	"github.com/boxrun/boxrun/agentproto"
	"golang.org/x/sys/unix"
)

// netUp configures the box's network from the setup: the first interface
// besides lo gets the address and comes up, the default route goes via the
// gateway, and /etc/resolv.conf (of the box's root, so call it after the
// chroot) names the gateway, where the host's policy resolver answers.
func netUp(n *agentproto.NetSetup) error {
	pfx, err := netip.ParsePrefix(n.Address)
	if err != nil || !pfx.Addr().Is4() {
		return fmt.Errorf("net: bad address %q", n.Address)
	}
	gw, err := netip.ParseAddr(n.Gateway)
	if err != nil || !gw.Is4() {
		return fmt.Errorf("net: bad gateway %q", n.Gateway)
	}
	ifname, err := firstLink()
	if err != nil {
		return err
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq(ifname)
	if err != nil {
		return err
	}
	if err := ifr.SetInet4Addr(pfx.Addr().AsSlice()); err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFADDR, ifr); err != nil {
		return fmt.Errorf("net: address of %s: %w", ifname, err)
	}
	m := ^uint32(0) << (32 - pfx.Bits())
	var mb [4]byte
	binary.BigEndian.PutUint32(mb[:], m)
	if err := ifr.SetInet4Addr(mb[:]); err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFNETMASK, ifr); err != nil {
		return fmt.Errorf("net: netmask of %s: %w", ifname, err)
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return err
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("net: up %s: %w", ifname, err)
	}
	idx, err := ifIndex(ifname)
	if err != nil {
		return err
	}
	if err := defaultRoute(gw.As4(), idx); err != nil {
		return fmt.Errorf("net: default route: %w", err)
	}
	os.Remove("/etc/resolv.conf") // a symlink (systemd-resolved) would lead elsewhere
	if err := os.MkdirAll("/etc", 0o755); err != nil {
		return err
	}
	return os.WriteFile("/etc/resolv.conf", []byte("nameserver "+gw.String()+"\n"), 0o644)
}

// firstLink returns the name of the first network interface besides lo.
func firstLink() (string, error) {
	ents, err := filepath.Glob("/sys/class/net/*")
	if err != nil {
		return "", err
	}
	for _, e := range ents {
		if name := filepath.Base(e); name != "lo" {
			return name, nil
		}
	}
	return "", errors.New("net: the VM has no network interface")
}

func ifIndex(name string) (int, error) {
	b, err := os.ReadFile("/sys/class/net/" + name + "/ifindex")
	if err != nil {
		return 0, err
	}
	var idx int
	_, err = fmt.Sscanf(string(b), "%d", &idx)
	return idx, err
}

// defaultRoute adds "default via gw dev ifindex" with one rtnetlink
// request and waits for the kernel's acknowledgement.
func defaultRoute(gw [4]byte, ifindex int) error {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	attr := func(typ uint16, data []byte) []byte {
		b := make([]byte, unix.SizeofRtAttr+len(data))
		binary.NativeEndian.PutUint16(b[0:2], uint16(len(b)))
		binary.NativeEndian.PutUint16(b[2:4], typ)
		copy(b[unix.SizeofRtAttr:], data)
		return b
	}
	var oif [4]byte
	binary.NativeEndian.PutUint32(oif[:], uint32(ifindex))
	rtm := unix.RtMsg{Family: unix.AF_INET, Table: unix.RT_TABLE_MAIN, Protocol: unix.RTPROT_BOOT,
		Scope: unix.RT_SCOPE_UNIVERSE, Type: unix.RTN_UNICAST}
	body := append((*[unix.SizeofRtMsg]byte)(unsafe.Pointer(&rtm))[:], attr(unix.RTA_GATEWAY, gw[:])...)
	body = append(body, attr(unix.RTA_OIF, oif[:])...)
	hdr := unix.NlMsghdr{Len: uint32(unix.SizeofNlMsghdr + len(body)), Type: unix.RTM_NEWROUTE,
		Flags: unix.NLM_F_REQUEST | unix.NLM_F_ACK | unix.NLM_F_CREATE | unix.NLM_F_REPLACE, Seq: 1}
	msg := append((*[unix.SizeofNlMsghdr]byte)(unsafe.Pointer(&hdr))[:], body...)
	if err := unix.Sendto(fd, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return err
	}
	buf := make([]byte, 4096)
	n, _, err := unix.Recvfrom(fd, buf, 0)
	if err != nil {
		return err
	}
	msgs, err := syscall.ParseNetlinkMessage(buf[:n])
	if err != nil {
		return err
	}
	for _, m := range msgs {
		if m.Header.Type == unix.NLMSG_ERROR && len(m.Data) >= 4 {
			if code := int32(binary.NativeEndian.Uint32(m.Data[:4])); code != 0 {
				return unix.Errno(-code)
			}
			return nil
		}
	}
	return errors.New("no acknowledgement")
}
