package gvisor_test

import (
	"testing"

	"github.com/boxrun/boxrun/driver/gvisor"
	"github.com/boxrun/boxrun/driver/gvisor/boxinit"
)

// TestRoleMarker checks that the driver looks for the marker the init role
// links in.
func TestRoleMarker(t *testing.T) {
	if string(gvisor.RoleMarker()) != boxinit.RoleMarker {
		t.Fatalf("driver marker %q != boxinit.RoleMarker %q", gvisor.RoleMarker(), boxinit.RoleMarker)
	}
}
