package boxrun_test

import (
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/boxrun/boxrun/internal/testenv"
)

// The package layering is a promise to users: a program that only talks to a
// server links no SQLite and no driver, a transport links no driver, and the
// vocabulary and the driver SPI depend on the standard library alone. The
// test reads the real dependency graph with `go list -deps`.
func TestLayering(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		testenv.Skip(t, "go command not found")
	}
	const mod = "github.com/boxrun/boxrun"
	sqlite := []string{"zombiezen.com/go/sqlite", "modernc.org/"}
	drivers := []string{mod + "/driver/"}
	for _, tc := range []struct {
		pkg        string
		forbidden  []string // prefixes no dependency may have
		stdlibOnly bool     // besides packages of this module listed in allowed
		allowed    []string
	}{
		{pkg: mod + "/client", forbidden: concat(sqlite, drivers, []string{mod + "/httpapi", mod + "/image"}, []string{mod + "$"})},
		{pkg: mod + "/httpapi", forbidden: concat(sqlite, drivers, []string{mod + "/client", mod + "/image"}, []string{mod + "$"})},
		{pkg: mod, forbidden: []string{mod + "/httpapi", mod + "/client", mod + "/cmd/"}},
		{pkg: mod + "/boxapi", stdlibOnly: true},
		{pkg: mod + "/sandbox", stdlibOnly: true, allowed: []string{mod + "/boxapi"}},
		{pkg: mod + "/driver/gvisor", forbidden: concat(sqlite, []string{mod + "$", mod + "/httpapi", mod + "/client"})},
		{pkg: mod + "/driver/qemu", forbidden: concat(sqlite, []string{mod + "$", mod + "/httpapi", mod + "/client"})},
		{pkg: mod + "/driver/kubernetes", forbidden: concat(sqlite, []string{mod + "$", mod + "/httpapi", mod + "/client"})},
		{pkg: mod + "/mcpserver", forbidden: concat(sqlite, drivers, []string{mod + "$", mod + "/image"})},
		{pkg: mod + "/image", forbidden: concat(sqlite, drivers, []string{mod + "$"})},
	} {
		t.Run(strings.TrimPrefix(tc.pkg, mod), func(t *testing.T) {
			out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", tc.pkg).Output()
			if err != nil {
				t.Fatalf("go list -deps %s: %v", tc.pkg, err)
			}
			for _, dep := range strings.Fields(string(out)) {
				if dep == tc.pkg {
					continue
				}
				if tc.stdlibOnly && !contains(tc.allowed, dep) {
					t.Errorf("%s must depend on the standard library only, but imports %s", tc.pkg, dep)
				}
				for _, f := range tc.forbidden {
					if exact, ok := strings.CutSuffix(f, "$"); ok && dep == exact || !ok && strings.HasPrefix(dep, f) {
						t.Errorf("%s must not depend on %s (found %s)", tc.pkg, strings.TrimSuffix(f, "$"), dep)
					}
				}
			}
		})
	}
}

func concat(lists ...[]string) []string {
	var out []string
	for _, l := range lists {
		out = append(out, l...)
	}
	return out
}

func contains(list []string, s string) bool { return slices.Contains(list, s) }
