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
// metadata: appends are plain writev(2)s of whole records, and the database
// says which prefix of the file is final.
//
// Cost per byte (the throughput bound of persisted output, see
// BenchmarkManagerOutput): the bytes are written from the buffer the
// driver read them into (no copy in user space, no allocation), and copied
// into an event only when a live reader listens. Writeback starts every
// few MiB (sync_file_range), so the fdatasync before the exit commits
// waits for little.
//
// Record format (little endian): u32 data length, u32 CRC-32C of the rest
// of the header and the data, u64 seq, i64 creation time (Unix ns), u8
// stream (1 stdout, 2 stderr), then the data (UTF-8 text, as the event's
// Data).
//
// Guarantees:
//   - each chunk is stored once and in seq order: stores of one exec are
//     serialized, each writes its records with one writev(2) straight from
//     the driver's buffer before publishing them (a reader of a running
//     exec reads only up to the end of the last whole record written, so
//     it never sees a half-written one);
//   - a failed write fails the exec ("output storage failed: …") and that
//     batch is never published, so live readers never see what replay
//     would not return;
//   - after a crash, Open scans the log of every exec that was running,
//     keeps the longest prefix of records whose CRC holds (everything that
//     was published survives a process crash: it was in the kernel before
//     it was published), truncates the rest, and records the exit after the
//     last kept seq; a finished exec's log is fdatasync'd soon after its
//     exit commits, and Open checks any log that was not (outsync.go);
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
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

const recHeader = 25

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// errBadRecord marks a torn or corrupt record (the end of the valid log).
var errBadRecord = errors.New("corrupt output record")

func outLogPath(dir, execID string) string { return filepath.Join(dir, execID+".log") }

// outLog is the append side of one exec's log; only the exec's store
// (under its execRun.wmu) uses it.
type outLog struct {
	f      *os.File
	rc     syscall.RawConn
	off    int64 // end of the last whole record
	synced int64 // end of what writeback was last started for
	hdr    []byte
	iov    [][]byte
}

// writebackEvery is how much a log grows between asynchronous writeback
// starts (sync_file_range): the fdatasync that precedes the exit's commit
// then finds little left to write.
const writebackEvery = 8 << 20

func createOutLog(path string) (*outLog, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create output log: %w", err)
	}
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("create output log: %w", err)
	}
	return &outLog{f: f, rc: rc}, nil
}

func streamByte(s string) byte {
	if s == "stderr" {
		return 2
	}
	return 1
}

// append writes chunks as records with one writev(2) (the data is not
// copied) and returns the new end offset. On error the end offset stays
// at the last whole record written before.
func (l *outLog) append(chunks []outChunk) (int64, error) {
	l.hdr = l.hdr[:0]
	for _, c := range chunks {
		var h [recHeader]byte
		binary.LittleEndian.PutUint32(h[0:], uint32(len(c.data)))
		binary.LittleEndian.PutUint64(h[8:], uint64(c.seq))
		binary.LittleEndian.PutUint64(h[16:], uint64(c.at.UnixNano()))
		h[24] = streamByte(c.stream)
		crc := crc32.Update(0, castagnoli, h[8:])
		crc = crc32.Update(crc, castagnoli, c.data)
		binary.LittleEndian.PutUint32(h[4:], crc)
		l.hdr = append(l.hdr, h[:]...)
	}
	iov := l.iov[:0]
	total := 0
	for i, c := range chunks {
		iov = append(iov, l.hdr[i*recHeader:(i+1)*recHeader], c.data)
		total += recHeader + len(c.data)
	}
	n, err := l.writev(iov)
	clear(iov)
	l.iov = iov[:0]
	if err != nil || n != total {
		// A torn tail: the reader stops before it (and recovery truncates
		// it); nothing is appended after it.
		if err == nil {
			err = io.ErrShortWrite
		}
		return l.off, fmt.Errorf("write output log: %w", err)
	}
	l.off += int64(n)
	if l.off-l.synced >= writebackEvery {
		_ = l.rc.Control(func(fd uintptr) {
			_ = unix.SyncFileRange(int(fd), l.synced, l.off-l.synced, unix.SYNC_FILE_RANGE_WRITE)
		})
		l.synced = l.off
	}
	return l.off, nil
}

// writev writes every byte of iov, resuming after short writes.
func (l *outLog) writev(iov [][]byte) (int, error) {
	total := 0
	for len(iov) > 0 {
		var n int
		var err error
		if cerr := l.rc.Write(func(fd uintptr) bool {
			for {
				n, err = unix.Writev(int(fd), iov)
				if err != unix.EINTR {
					return true
				}
			}
		}); cerr != nil {
			return total, cerr
		}
		if err != nil {
			return total, err
		}
		if n == 0 {
			return total, io.ErrShortWrite
		}
		total += n
		for n > 0 && len(iov) > 0 {
			if n >= len(iov[0]) {
				n -= len(iov[0])
				iov = iov[1:]
			} else {
				iov[0] = iov[0][n:]
				n = 0
			}
		}
		for len(iov) > 0 && len(iov[0]) == 0 {
			iov = iov[1:]
		}
	}
	return total, nil
}

// file returns the log's file for the syncer (see outsync.go), which
// syncs and closes it; the outLog is not used afterwards.
func (l *outLog) file() *os.File { return l.f }

// discard closes the log without syncing (an exec that failed to store).
func (l *outLog) discard() { _ = l.f.Close() }

// logReader reads records of one log up to a limit, through a read-ahead
// window (one pread per readAhead bytes instead of two per record).
type logReader struct {
	f      *os.File
	off    int64
	limit  int64
	execID string
	rbuf   []byte // the window's storage
	win    []byte // bytes of the file from winOff
	winOff int64
}

// readAhead is the size of a logReader's window.
const readAhead = 1 << 20

// view returns n bytes of the file at off (valid until the next call),
// or fewer and io.EOF when the file ends first.
func (r *logReader) view(off int64, n int) ([]byte, error) {
	if off >= r.winOff && off+int64(n) <= r.winOff+int64(len(r.win)) {
		return r.win[off-r.winOff : off-r.winOff+int64(n)], nil
	}
	size := max(n, readAhead)
	if r.limit >= 0 && r.limit-off < int64(size) {
		size = int(max(r.limit-off, int64(n)))
	}
	if cap(r.rbuf) < size {
		r.rbuf = make([]byte, size)
	}
	m, err := r.f.ReadAt(r.rbuf[:size], off)
	r.win, r.winOff = r.rbuf[:m], off
	if m < n {
		if err == nil {
			err = io.EOF
		}
		return r.win, err
	}
	return r.win[:n], nil
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
	hb, err := r.view(r.off, recHeader)
	copy(h[:], hb)
	if err != nil {
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
	data, err := r.view(r.off+recHeader, int(n))
	if err != nil {
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
