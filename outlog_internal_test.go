package boxrun

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// A log whose writer died mid-record keeps its whole records: recovery
// truncates the torn tail and reports the last whole seq.
func TestOutLog_RecoverTornTail(t *testing.T) {
	path := filepath.Join(t.TempDir(), "exec_x.log")
	l, err := createOutLog(path)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	evs := []outChunk{
		{seq: 0, stream: "stdout", data: []byte("hello\n"), at: now},
		{seq: 1, stream: "stderr", data: []byte("oops\n"), at: now},
	}
	good, err := l.append(evs)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.append([]outChunk{{seq: 2, stream: "stdout", data: []byte("torn record data"), at: now}}); err != nil {
		t.Fatal(err)
	}
	l.discard()
	for _, cut := range []int64{good + 3, good + recHeader + 4} {
		if err := os.Truncate(path, cut); err != nil {
			t.Fatal(err)
		}
		size, last, err := recoverOutLog(path, "exec_x")
		if err != nil || size != good || last != 1 {
			t.Fatalf("cut at %d: recover = %d, %d, %v; want %d, 1", cut, size, last, err, good)
		}
	}
	// A flipped byte in the data is caught by the checksum.
	b, _ := os.ReadFile(path)
	b[recHeader+1] ^= 0xff
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if size, last, err := recoverOutLog(path, "exec_x"); err != nil || size != 0 || last != -1 {
		t.Fatalf("corrupt first record: recover = %d, %d, %v", size, last, err)
	}
}
