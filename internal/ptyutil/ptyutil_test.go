package ptyutil_test

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/boxrun/boxrun/internal/ptyutil"
	"golang.org/x/sys/unix"
)

func TestCopyInputEOF(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"", "\x04"},
		{"hello\n", "hello\n\x04"},
		{"hello", "hello\x04\x04"},
	} {
		var buf bytes.Buffer
		if err := ptyutil.CopyInput(&buf, strings.NewReader(c.in)); err != nil || buf.String() != c.want {
			t.Errorf("CopyInput(%q) wrote %q, %v; want %q", c.in, buf.String(), err, c.want)
		}
	}
	var buf bytes.Buffer
	if err := ptyutil.CopyInput(&buf, nil); err != nil || buf.String() != "\x04" {
		t.Errorf("CopyInput(nil) wrote %q, %v", buf.String(), err)
	}
}

func TestOpen(t *testing.T) {
	master, tty, err := ptyutil.Open(0, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer master.Close()
	defer tty.Close()
	ws, err := unix.IoctlGetWinsize(int(tty.Fd()), unix.TIOCGWINSZ)
	if err != nil || ws.Row != ptyutil.DefaultRows || ws.Col != ptyutil.DefaultCols {
		t.Errorf("size %+v, %v; want the default", ws, err)
	}
	if err := ptyutil.SetSize(master, 30, 100); err != nil {
		t.Fatal(err)
	}
	if ws, _ := unix.IoctlGetWinsize(int(tty.Fd()), unix.TIOCGWINSZ); ws.Row != 30 || ws.Col != 100 {
		t.Errorf("size after SetSize %+v", ws)
	}
	// The master is pollable: a read with nothing to read stops at the
	// deadline instead of blocking.
	if err := master.SetReadDeadline(time.Now().Add(50 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if _, err := master.Read(make([]byte, 16)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("Read = %v; want a deadline error", err)
	}
}
