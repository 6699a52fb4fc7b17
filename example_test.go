package boxrun_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/boxrun/boxrun"
	"github.com/boxrun/boxrun/boxruntest"
)

// openExample opens a Manager over the fake driver in a temporary directory.
func openExample() (*boxrun.Manager, func()) {
	dir, err := os.MkdirTemp("", "boxrun-example-")
	if err != nil {
		panic(err)
	}
	m, err := boxrun.Open(dir, boxrun.WithDriver(boxruntest.NewFakeDriver(filepath.Join(dir, "fake"))), boxrun.WithImages(nil))
	if err != nil {
		panic(err)
	}
	return m, func() { m.Close(); os.RemoveAll(dir) }
}

func ExampleManager_Exec() {
	m, done := openExample()
	defer done()
	ctx := context.Background()

	box, err := m.Create(ctx, boxrun.BoxSpec{Image: "busybox", Name: "example"})
	if err != nil {
		panic(err)
	}
	e, err := m.Exec(ctx, box.ID, boxrun.ExecRequest{Cmd: []string{"sh", "-c", "echo hello; exit 3"}}, os.Stdout, nil)
	if err != nil {
		panic(err)
	}
	fmt.Println(e.Status, *e.ExitCode)
	// Output:
	// hello
	// failed 3
}

func ExampleManager_ExecEvents() {
	m, done := openExample()
	defer done()
	ctx := context.Background()

	box, _ := m.Create(ctx, boxrun.BoxSpec{})
	e, _ := m.StartExec(ctx, box.ID, boxrun.ExecRequest{Cmd: []string{"sh", "-c", "echo out; sleep 0.1; echo err >&2"}})
	// Replays what is stored, then follows live output until the exit event.
	_ = m.ExecEvents(ctx, e.ID, -1, func(ev boxrun.ExecEvent) error {
		if ev.Kind == boxrun.KindExit {
			fmt.Println(ev.Seq, "exit", ev.Data)
			return nil
		}
		fmt.Println(ev.Seq, ev.Stream, strings.TrimSpace(ev.Data))
		return nil
	})
	// Output:
	// 0 stdout out
	// 1 stderr err
	// 2 exit {"exit_code":0}
}

func ExampleManager_UploadFile() {
	m, done := openExample()
	defer done()
	ctx := context.Background()

	box, _ := m.Create(ctx, boxrun.BoxSpec{Name: "files"})
	_ = m.UploadFile(ctx, "files", "/root/notes/hello.txt", strings.NewReader("hi from the host\n"))
	_ = m.DownloadFile(ctx, box.ID, "/root/notes/hello.txt", os.Stdout)

	_, _ = m.Stop(ctx, "files") // a stopped box keeps its files
	_, _ = m.Start(ctx, "files")
	_ = m.DownloadFile(ctx, "files", "/root/notes/hello.txt", os.Stdout)
	// Output:
	// hi from the host
	// hi from the host
}

func ExampleManager_Run() {
	m, done := openExample()
	defer done()

	res, err := m.Run(context.Background(), boxrun.RunRequest{Cmd: []string{"sh", "-c", "echo ephemeral"}})
	if err != nil {
		panic(err)
	}
	boxes, _ := m.List(context.Background(), boxrun.BoxFilter{})
	fmt.Printf("%q exit=%d boxes left=%d\n", res.Stdout, *res.ExitCode, len(boxes))
	// Output:
	// "ephemeral\n" exit=0 boxes left=0
}
