package main

import (
	"testing"

	"github.com/boxrun/boxrun"
)

func TestParsePools(t *testing.T) {
	got, err := parsePools([]string{"alpine:3.20=4", "alpine:3.20:1,256=2", "oci:/x/y:1,512=1", "busybox=3"})
	if err != nil {
		t.Fatal(err)
	}
	want := []boxrun.PoolSpec{
		{Image: resolveImage("alpine:3.20"), Size: 4},
		{Image: resolveImage("alpine:3.20"), CPU: 1, MemoryMB: 256, Size: 2},
		{Image: "oci:/x/y", CPU: 1, MemoryMB: 512, Size: 1},
		{Image: resolveImage("busybox"), Size: 3},
	}
	if len(got) != len(want) {
		t.Fatalf("got %+v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("%d: got %+v, want %+v", i, got[i], want[i])
		}
	}
	for _, bad := range []string{"alpine", "alpine=0", "alpine=x", "=2", "alpine:0,256=1", "alpine:1,x=1"} {
		if _, err := parsePools([]string{bad}); err == nil {
			t.Errorf("--pool %q accepted", bad)
		}
	}
}
