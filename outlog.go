package boxrun

// Exec output storage.
//
// Output is the bulk of what BoxRun stores, and one SQLite row per chunk
// bounded persisted output at a fifth of what a box can write to a pipe.
// So output `log` events live in one append-only file per exec,
// dir/output/<exec ID>.log, and SQLite keeps what must change atomically
// with the exec record: the exec row, its exit event (table events) and the
// committed size of its log (table exec_output), all in the transaction
// that finishes the exec. This is how log-structured stores split data and
// metadata: appends are plain write(2)s of whole batches, and the database
// says which prefix of the file is final.
//
// Record format (little endian): u32 data length, u32 CRC-32C of the rest
// of the header and the data, u64 seq, i64 creation time (Unix ns), u8
// stream (1 stdout, 2 stderr), then the data (UTF-8 text, as the event's
// Data).
//
// Guarantees:
//   - each chunk is stored once and in seq order: the exec's flusher is the
//     only writer, and it writes a batch with one write(2) before publishing
//     it (a reader of a running exec reads only up to the end of the last
//     whole batch written, so it never sees a half-written record);
//   - a failed write fails the exec ("output storage failed: …") and that
//     batch is never published, so live readers never see what replay
//     would not return;
//   - after a crash, Open scans the log of every exec that was running,
//     keeps the longest prefix of records whose CRC holds (everything that
//     was published survives a process crash: it was in the kernel before
//     it was published), truncates the rest, and records the exit after the
//     last kept seq; a finished exec's log is fdatasync'd before its exit
//     commits;
//   - replay streams the file record by record (bounded memory), then the
//     events table in pages.
//
// Execs stored by older versions (and the reference server) have their
// `log` rows in the events table and no exec_output row; they replay as
// before.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"time"
)

const recHeader = 25

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// errBadRecord marks a torn or corrupt record (the end of the valid log).
var errBadRecord = errors.New("corrupt output record")

func outLogPath(dir, execID string) string { return filepath.Join(dir, execID+".log") }

// outLog is the append side of one exec's log; only the exec's flusher
// (then its finish) uses it.
type outLog struct {
	f   *os.File
	off int64
	buf []byte
}

func createOutLog(path string) (*outLog, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create output log: %w", err)
	}
	return &outLog{f: f}, nil
}

func streamByte(s string) byte {
	if s == "stderr" {
		return 2
	}
	return 1
}

// append writes evs as one batch and returns the new end offset.
func (l *outLog) append(evs []ExecEvent) (int64, error) {
	b := l.buf[:0]
	for _, ev := range evs {
		var h [recHeader]byte
		binary.LittleEndian.PutUint32(h[0:], uint32(len(ev.Data)))
		binary.LittleEndian.PutUint64(h[8:], uint64(ev.Seq))
		binary.LittleEndian.PutUint64(h[16:], uint64(ev.CreatedAt.UnixNano()))
		h[24] = streamByte(ev.Stream)
		c := crc32.Update(0, castagnoli, h[8:])
		c = crc32.Update(c, castagnoli, []byte(ev.Data))
		binary.LittleEndian.PutUint32(h[4:], c)
		b = append(b, h[:]...)
		b = append(b, ev.Data...)
	}
	if cap(b) <= 4<<20 {
		l.buf = b
	}
	n, err := l.f.Write(b)
	l.off += int64(n)
	if err != nil {
		return l.off, fmt.Errorf("write output log: %w", err)
	}
	return l.off, nil
}

// finish syncs and closes the log.
func (l *outLog) finish() error {
	err := l.f.Sync()
	if cerr := l.f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync output log: %w", err)
	}
	return nil
}

// discard closes the log without syncing (an exec that failed to store).
func (l *outLog) discard() { _ = l.f.Close() }

// logReader reads records of one log up to a limit.
type logReader struct {
	f      *os.File
	off    int64
	limit  int64
	execID string
	buf    []byte
}

func openLogReader(path, execID string, limit int64) (*logReader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	return &logReader{f: f, limit: limit, execID: execID}, nil
}

func (r *logReader) close() { _ = r.f.Close() }

// next returns the next record. When skipData is true and the record's
// seq is at most skipTo, its data is not read. io.EOF at the limit;
// errBadRecord on a torn or corrupt record.
func (r *logReader) next(skipTo int64) (ExecEvent, error) {
	if r.limit >= 0 && r.off >= r.limit {
		return ExecEvent{}, io.EOF
	}
	var h [recHeader]byte
	if _, err := r.f.ReadAt(h[:], r.off); err != nil {
		if errors.Is(err, io.EOF) {
			if r.limit < 0 && isZero(h[:]) {
				return ExecEvent{}, io.EOF
			}
			return ExecEvent{}, errBadRecord
		}
		return ExecEvent{}, err
	}
	n := int64(binary.LittleEndian.Uint32(h[0:]))
	seq := int64(binary.LittleEndian.Uint64(h[8:]))
	end := r.off + recHeader + n
	if r.limit >= 0 && end > r.limit {
		return ExecEvent{}, errBadRecord
	}
	ev := ExecEvent{ExecID: r.execID, Seq: seq, Kind: KindLog, Stream: "stdout"}
	if h[24] == 2 {
		ev.Stream = "stderr"
	}
	ev.CreatedAt = time.Unix(0, int64(binary.LittleEndian.Uint64(h[16:]))).UTC()
	if seq <= skipTo && r.limit >= 0 {
		r.off = end // trusted prefix: skip without reading
		return ev, nil
	}
	if n > 64<<20 {
		return ExecEvent{}, errBadRecord
	}
	if int64(cap(r.buf)) < n {
		r.buf = make([]byte, n)
	}
	data := r.buf[:n]
	if _, err := r.f.ReadAt(data, r.off+recHeader); err != nil {
		if errors.Is(err, io.EOF) {
			return ExecEvent{}, errBadRecord
		}
		return ExecEvent{}, err
	}
	c := crc32.Update(0, castagnoli, h[8:])
	c = crc32.Update(c, castagnoli, data)
	if c != binary.LittleEndian.Uint32(h[4:]) {
		return ExecEvent{}, errBadRecord
	}
	ev.Data = string(data)
	r.off = end
	return ev, nil
}

func isZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// readOutLog calls fn with every record of the log at path with seq >
// after, up to limit bytes, in order. fn returning true stops the read.
func readOutLog(path, execID string, limit, after int64, fn func(ExecEvent) (bool, error)) (bool, error) {
	r, err := openLogReader(path, execID, limit)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil // a log never written (the exec failed to start)
	}
	if err != nil {
		return false, fmt.Errorf("read output log: %w", err)
	}
	defer r.close()
	for {
		ev, err := r.next(after)
		if err == io.EOF {
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("read output log %s at %d: %w", execID, r.off, err)
		}
		if ev.Seq <= after {
			continue
		}
		if done, err := fn(ev); done || err != nil {
			return done, err
		}
	}
}

// recoverOutLog finds the valid prefix of a log whose writer died: it
// truncates the file after the last whole record and returns that size and
// the last record's seq (-1 when none).
func recoverOutLog(path, execID string) (size, lastSeq int64, err error) {
	r, err := openLogReader(path, execID, -1)
	if errors.Is(err, os.ErrNotExist) {
		return 0, -1, nil
	}
	if err != nil {
		return 0, -1, err
	}
	lastSeq = -1
	for {
		ev, err := r.next(-1)
		if err != nil {
			break // EOF, or the torn tail
		}
		lastSeq = ev.Seq
	}
	size = r.off
	r.close()
	if err := os.Truncate(path, size); err != nil {
		return 0, -1, fmt.Errorf("truncate output log: %w", err)
	}
	return size, lastSeq, nil
}
