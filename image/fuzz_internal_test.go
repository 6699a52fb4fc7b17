package image

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// FuzzParseRef: any reference string (API bodies, CLI arguments) parses or
// fails cleanly; a parsed one has a key that parses to the same key.
func FuzzParseRef(f *testing.F) {
	for _, s := range []string{
		"busybox", "busybox:1.36", "docker.io/library/busybox:latest", "localhost:5000/a/b@sha256:" + strings.Repeat("a", 64),
		"127.0.0.1:32875/evil/x:latest", "oci:/tmp/layout:tag", "oci:/tmp/layout@sha256:" + strings.Repeat("0", 64),
		"docker-archive:/tmp/a.tar:img:tag", "dir:/tmp/rootfs", "UPPER/case", "a//b", ":tag", "@sha256:", "dir:", "oci:",
		"[::1]:5000/x", "x:" + strings.Repeat("9", 200),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, ref string) {
		src, err := parseRef(ref, nil)
		if err != nil {
			return
		}
		if src.key == "" {
			t.Fatalf("parseRef(%q): empty key", ref)
		}
		again, err := parseRef(src.key, nil)
		if err != nil {
			t.Fatalf("parseRef(%q) = key %q, which does not parse: %v", ref, src.key, err)
		}
		if again.key != src.key {
			t.Fatalf("parseRef(%q) = key %q, which parses to key %q", ref, src.key, again.key)
		}
	})
}

// FuzzImageConfig: an image config (from a registry or an archive: untrusted)
// parses or fails cleanly, and what boxes use of it survives the index's
// JSON round trip.
func FuzzImageConfig(f *testing.F) {
	for _, s := range []string{
		`{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/bin","A=b=c"],"Entrypoint":["/bin/sh"],"Cmd":["-c","echo"],"WorkingDir":"/root","User":"1000:1000"},"rootfs":{"type":"layers","diff_ids":["sha256:` + strings.Repeat("a", 64) + `"]},"created":"2024-01-01T00:00:00Z"}`,
		`{"config":{"User":"nobody","Env":null}}`,
		`{"created":"not a time"}`,
		`{"config":{"Env":["\u0000=x"],"WorkingDir":"../../etc"}}`,
		`[]`, `null`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		cf, err := v1.ParseConfigFile(bytes.NewReader(raw))
		if err != nil {
			return
		}
		e := imageEntry{Config: imageConfig(cf), Created: cf.Created.Time.UTC()}
		b, err := json.Marshal(e)
		if err != nil {
			t.Fatalf("marshal index entry: %v", err)
		}
		var back imageEntry
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("index entry does not read back: %v", err)
		}
	})
}
