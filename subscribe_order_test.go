package boxrun_test

import (
	"testing"
	"time"

	"github.com/boxrun/boxrun"
	"github.com/boxrun/boxrun/boxruntest"
)

// Live events published out of seq order (commits by concurrent goroutines)
// reach a subscriber in seq order, each once, so resuming after the last
// seq it saw skips nothing. Events another filter hides leave gaps that do
// not hold anything back.
func TestSubscribe_OutOfOrderPublish(t *testing.T) {
	m := boxruntest.NewManager(t)
	ctx := ctxT(t)
	recv := func(sub boxrun.Subscription) boxrun.Event {
		t.Helper()
		select {
		case ev := <-sub.C():
			return ev
		case <-time.After(5 * time.Second):
			t.Fatal("no event")
		}
		return boxrun.Event{}
	}
	commit := func(box string) boxrun.Event {
		t.Helper()
		ev, err := boxrun.JournalForTest(ctx, m, box)
		if err != nil {
			t.Fatal(err)
		}
		return ev
	}

	sub, err := m.Subscribe(ctx, boxrun.EventFilter{})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	e1, e2, e3 := commit("box_a"), commit("box_a"), commit("box_a")
	for _, ev := range []boxrun.Event{e3, e1, e2} {
		boxrun.PublishForTest(m, ev)
	}
	for _, want := range []boxrun.Event{e1, e2, e3} {
		if got := recv(sub); got.Seq != want.Seq {
			t.Fatalf("got seq %d, want %d", got.Seq, want.Seq)
		}
	}

	// A box filter: the other box's events are gaps, never delivered.
	subA, err := m.Subscribe(ctx, boxrun.EventFilter{BoxID: "box_a"})
	if err != nil {
		t.Fatal(err)
	}
	defer subA.Close()
	a1, b1, a2 := commit("box_a"), commit("box_b"), commit("box_a")
	boxrun.PublishForTest(m, a2)
	boxrun.PublishForTest(m, b1)
	boxrun.PublishForTest(m, a1) // late: delivered from the journal already
	for _, want := range []boxrun.Event{a1, a2} {
		if got := recv(subA); got.Seq != want.Seq || got.BoxID != "box_a" {
			t.Fatalf("filtered: got %+v, want seq %d", got, want.Seq)
		}
	}
	a3 := commit("box_a")
	boxrun.PublishForTest(m, a3)
	if got := recv(subA); got.Seq != a3.Seq {
		t.Fatalf("after the gap: got seq %d, want %d (a repeat?)", got.Seq, a3.Seq)
	}
	// The unfiltered subscriber saw all of them in order.
	for _, want := range []boxrun.Event{a1, b1, a2, a3} {
		if got := recv(sub); got.Seq != want.Seq {
			t.Fatalf("unfiltered: got seq %d, want %d", got.Seq, want.Seq)
		}
	}
}
