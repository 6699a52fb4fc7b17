package boxapi

import (
	"errors"
	"testing"
)

// FuzzEgressValidate: any rule either validates to a normalized rule that
// validates to itself again, or fails with VALIDATION_ERROR; never a panic.
func FuzzEgressValidate(f *testing.F) {
	for _, s := range []string{"10.0.0.0/8", "1.2.3.4", "::/0", "example.com", "*.a.b", "a..b", "-x.test", "300.1.1.1/8", ""} {
		f.Add("allow", s, "")
		f.Add("deny", "", s)
	}
	f.Fuzz(func(t *testing.T, action, cidr, domain string) {
		p, err := EgressPolicy{Rules: []EgressRule{{Action: action, CIDR: cidr, Domain: domain}}}.Validate()
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error not VALIDATION_ERROR: %v", err)
			}
			return
		}
		again, err := p.Validate()
		if err != nil || len(again.Rules) != 1 || again.Rules[0] != p.Rules[0] {
			t.Fatalf("not stable: %+v -> %+v, %v", p, again, err)
		}
	})
}
