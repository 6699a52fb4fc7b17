package boxrun

import (
	"context"

	"zombiezen.com/go/sqlite"
)

// JournalForTest journals a box.stopped event for boxID without publishing
// it, so tests can publish committed events in any order.
func JournalForTest(ctx context.Context, m *Manager, boxID string) (Event, error) {
	var ev Event
	err := m.store.write(ctx, func(conn *sqlite.Conn) (err error) {
		ev, err = appendJournal(conn, FormatTime(m.now()), journalEntry{Type: EventBoxStopped, BoxID: boxID})
		return err
	})
	return ev, err
}

// PublishForTest publishes ev on the Manager's bus.
func PublishForTest(m *Manager, ev Event) { m.bus.publish(ev) }
