package boxinit_test

import (
	"testing"

	"github.com/boxrun/boxrun/driver/gvisor/boxinit"
)

func TestIsRole(t *testing.T) {
	for argv0, want := range map[string]bool{
		"/.boxrun/init": true, "boxrun-init": true, "/usr/local/bin/boxrun-init": true,
		"boxrun": false, "/usr/bin/boxrun": false, "/tmp/init": false,
	} {
		if got := boxinit.IsRole(argv0); got != want {
			t.Errorf("IsRole(%q) = %v", argv0, got)
		}
	}
}
