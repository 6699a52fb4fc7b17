package httpapi_test

import (
	"context"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/boxrun/boxrun/httpapi"
	"github.com/boxrun/boxrun/internal/testenv"
)

// TestCompatPythonSDK runs scripts/compat_sdk.py (Python standard library
// only) against a real server on loopback TCP and on a Unix socket.
func TestCompatPythonSDK(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		testenv.Skip(t, "python3 not installed")
	}
	script, err := filepath.Abs("../scripts/compat_sdk.py")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, network, addr, url string }{
		{"TCP", "tcp", "127.0.0.1:0", ""},
		{"UnixSocket", "unix", filepath.Join(t.TempDir(), "boxrun.sock"), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := httpapi.Listen(tc.network, tc.addr)
			if err != nil {
				t.Fatal(err)
			}
			s := serve(t, ln)
			url := s.url
			if tc.network == "unix" {
				url = "http+unix://" + tc.addr
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			out, err := exec.CommandContext(ctx, py, script, url).CombinedOutput()
			t.Logf("compat_sdk.py %s:\n%s", url, out)
			if err != nil {
				t.Fatalf("compat script failed: %v", err)
			}
		})
	}
}
