package main

import (
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"
)

func TestTarget(t *testing.T) {
	withSock := t.TempDir()
	ln, err := net.Listen("unix", filepath.Join(withSock, "boxrun.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	for _, tc := range []struct {
		name      string
		url       string
		env       map[string]string
		state     string
		want      string
		wantLocal bool
	}{
		{"url wins", "http://h:1", map[string]string{"BOXRUN_HOST": "x"}, withSock, "http://h:1", false},
		{"host and port", "", map[string]string{"BOXRUN_HOST": "10.0.0.5", "BOXRUN_PORT": "7000"}, withSock, "http://10.0.0.5:7000", false},
		{"port only", "", map[string]string{"BOXRUN_PORT": "7000"}, withSock, "http://127.0.0.1:7000", false},
		{"socket in state dir", "", nil, withSock, "unix://" + filepath.Join(withSock, "boxrun.sock"), true},
		{"default tcp", "", nil, t.TempDir(), "http://127.0.0.1:9090", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := newRootConfig(strings.NewReader(""), io.Discard, io.Discard, func(k string) string { return tc.env[k] })
			cfg.url, cfg.stateDir = tc.url, tc.state
			got, local := cfg.target()
			if got != tc.want || local != tc.wantLocal {
				t.Errorf("target() = %q, %v; want %q, %v", got, local, tc.want, tc.wantLocal)
			}
		})
	}
}

func TestParseFlags(t *testing.T) {
	var m megabytes
	for in, want := range map[string]int64{"512": 512, "512m": 512, "2g": 2048, "1G": 1024, "2048k": 2, "256MB": 256} {
		if err := m.Set(in); err != nil || int64(m) != want {
			t.Errorf("megabytes %q = %d, %v; want %d", in, m, err, want)
		}
	}
	if err := m.Set("lots"); err == nil {
		t.Error("megabytes accepted junk")
	}
	vols, err := parseVolumes([]string{"/a:/b", "/c:/d:ro", "/e:/f:rw"})
	if err != nil || len(vols) != 3 || vols[0].Readonly || !vols[1].Readonly || vols[2].Readonly {
		t.Errorf("parseVolumes = %+v, %v", vols, err)
	}
	if _, err := parseEnv([]string{"NOEQUALS"}); err == nil {
		t.Error("parseEnv accepted a bare key")
	}
	if got := resolveImage("python"); got != "python:3.12-slim" {
		t.Errorf("alias python = %q", got)
	}
	if got := resolveImage("oci:/x"); got != "oci:/x" {
		t.Errorf("non-alias changed: %q", got)
	}
}
