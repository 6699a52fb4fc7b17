package boxrun

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"time"
)

// runningHandle returns the sandbox handle of a running box, or
// BOX_NOT_FOUND / BOX_NOT_RUNNING ("Box is not running", as file transfer
// and attach report it).
func (m *Manager) runningHandle(ctx context.Context, box string) (*boxRow, error) {
	b, err := m.store.getBox(ctx, box)
	if err != nil {
		return nil, err
	}
	if b.Status == StatusStopped { // a hibernated box wakes up
		if rb, err := m.resumeIfHibernated(ctx, b.ID); err != nil {
			return nil, err
		} else if rb != nil {
			b = rb
		}
	}
	if b.Status != StatusRunning {
		return nil, Errorf(CodeBoxNotRunning, "Box is not running")
	}
	if b.Handle == "" {
		return nil, Errorf(CodeRuntimeError, "Box has no BoxLite ID")
	}
	m.touch(b.ID) // a copy or attach is activity (idle timeout)
	return b, nil
}

// agentHandle is runningHandle for a user of the box's agent (attach, file
// transfer): done ends the use. During a checkpoint it fails with BOX_BUSY.
func (m *Manager) agentHandle(ctx context.Context, box string) (*boxRow, func(), error) {
	b, err := m.runningHandle(ctx, box)
	if err != nil {
		return nil, nil, err
	}
	done, err := m.useAgent(b.ID)
	if err != nil {
		return nil, nil, err
	}
	return b, done, nil
}

// fileHandle is agentHandle for a file operation on the path p (called
// what in the error): it refuses a p that holds a NUL and enters the
// Manager first. done ends both.
func (m *Manager) fileHandle(ctx context.Context, box, what, p string) (*boxRow, func(), error) {
	if err := checkPath(what, p); err != nil {
		return nil, nil, err
	}
	if err := m.enter(); err != nil {
		return nil, nil, err
	}
	b, done, err := m.agentHandle(ctx, box)
	if err != nil {
		m.leave()
		return nil, nil, err
	}
	return b, func() { done(); m.leave() }, nil
}

// boxPath makes p absolute against the box's workdir and cleans it.
func boxPath(b *boxRow, p string) string {
	if !strings.HasPrefix(p, "/") {
		p = path.Join(b.Workdir, p)
	}
	return path.Clean(p)
}

// CopyIn extracts a tar stream into the directory dst of a running box
// (relative dst is taken from the box's workdir). Entries that would land
// outside dst are rejected. Errors: BOX_NOT_FOUND, BOX_NOT_RUNNING,
// RUNTIME_ERROR (wrapping ErrInvalid for unsafe entries), VALIDATION_ERROR
// (NUL in dst).
func (m *Manager) CopyIn(ctx context.Context, box, dst string, r io.Reader) error {
	b, done, err := m.fileHandle(ctx, box, "path", dst)
	if err != nil {
		return err
	}
	defer done()
	if err := m.driver.CopyIn(ctx, b.Handle, boxPath(b, dst), r); err != nil {
		return Errorf(CodeRuntimeError, "Failed to upload file: %w", err)
	}
	return nil
}

// CopyOut writes a tar stream of src (a file or a directory) in a running
// box to w; entry names start with src's base name. Nothing is written to w
// when src is missing. The stream is produced inside the box, so code in the
// box can forge it: extract it on the host only with care (the CLI uses
// internal/tarutil.ExtractUntrusted). Errors: BOX_NOT_FOUND, BOX_NOT_RUNNING,
// FILE_NOT_FOUND (src missing), VALIDATION_ERROR (NUL in src),
// RUNTIME_ERROR.
func (m *Manager) CopyOut(ctx context.Context, box, src string, w io.Writer) error {
	b, done, err := m.fileHandle(ctx, box, "path", src)
	if err != nil {
		return err
	}
	defer done()
	if err := m.driver.CopyOut(ctx, b.Handle, boxPath(b, src), w); err != nil {
		if errors.Is(err, ErrNotFound) {
			return &Error{Code: CodeFileNotFound, Message: fmt.Sprintf("File '%s' not found in box", src), Err: err}
		}
		return downloadError(src, err)
	}
	return nil
}

// checkPath refuses a path with a NUL byte, which no file system path can
// hold (and which would otherwise be cut short somewhere on the way).
func checkPath(what, p string) error {
	if strings.ContainsRune(p, 0) {
		return &Error{Code: CodeValidationError, Message: what + " must not contain NUL bytes", Err: ErrInvalid}
	}
	return nil
}

// downloadError maps a failure to copy src out of a box to the API's errors.
func downloadError(src string, err error) error {
	if errors.Is(err, ErrNotFound) {
		return &Error{Code: CodeRuntimeError, Message: fmt.Sprintf("File '%s' not found in box", src), Err: err}
	}
	return Errorf(CodeRuntimeError, "Failed to download file: %w", err)
}

// UploadFile writes the content of r to the file dest in a running box,
// creating its parent directories. r is streamed; when its size is not known
// (not an *os.File, nor a Len/Size method) it is spooled to a temporary file
// under the Manager's directory first. Errors: BOX_NOT_FOUND,
// BOX_NOT_RUNNING, RUNTIME_ERROR (no file name in dest, copy failure),
// VALIDATION_ERROR (NUL in dest).
func (m *Manager) UploadFile(ctx context.Context, box, dest string, r io.Reader) error {
	b, done, err := m.fileHandle(ctx, box, "dest", dest)
	if err != nil {
		return err
	}
	defer done()
	name := path.Base(dest)
	if dest == "" || strings.HasSuffix(dest, "/") || name == "." || name == ".." || name == "/" {
		return Errorf(CodeRuntimeError, "Invalid destination path (no filename): %s", dest)
	}
	size, r, cleanup, err := m.sized(r)
	if err != nil {
		return Errorf(CodeRuntimeError, "Failed to rename upload file: %w", err)
	}
	defer cleanup()
	pr, pw := io.Pipe()
	go func() {
		tw := tar.NewWriter(pw)
		err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: size, ModTime: time.Now()})
		if err == nil {
			_, err = io.CopyN(tw, r, size)
		}
		if err == nil {
			err = tw.Close()
		}
		pw.CloseWithError(err)
	}()
	err = m.driver.CopyIn(ctx, b.Handle, path.Dir(boxPath(b, dest)), pr)
	pr.CloseWithError(io.ErrClosedPipe)
	if err != nil {
		return Errorf(CodeRuntimeError, "Failed to upload file: %w", err)
	}
	return nil
}

// sized returns r's size, spooling it to a temp file when unknown.
func (m *Manager) sized(r io.Reader) (int64, io.Reader, func(), error) {
	nop := func() {}
	switch v := r.(type) {
	case interface{ Len() int }:
		return int64(v.Len()), r, nop, nil
	case interface{ Size() int64 }:
		return v.Size(), r, nop, nil
	case *os.File:
		if fi, err := v.Stat(); err == nil && fi.Mode().IsRegular() {
			off, _ := v.Seek(0, io.SeekCurrent)
			return fi.Size() - off, r, nop, nil
		}
	}
	dir := m.dir + "/tmp"
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return 0, nil, nop, err
	}
	f, err := os.CreateTemp(dir, "upload-*")
	if err != nil {
		return 0, nil, nop, err
	}
	cleanup := func() { f.Close(); os.Remove(f.Name()) }
	n, err := io.Copy(f, r)
	if err == nil {
		_, err = f.Seek(0, io.SeekStart)
	}
	if err != nil {
		cleanup()
		return 0, nil, nop, err
	}
	return n, f, cleanup, nil
}

// DownloadFile writes the regular file at path in a running box to w,
// streaming. Nothing is written to w unless the file exists and is
// regular. Errors: BOX_NOT_FOUND, BOX_NOT_RUNNING, RUNTIME_ERROR (no file
// name, file missing: "File '…' not found in box", not a regular file),
// VALIDATION_ERROR (NUL in p).
func (m *Manager) DownloadFile(ctx context.Context, box, p string, w io.Writer) error {
	b, done, err := m.fileHandle(ctx, box, "path", p)
	if err != nil {
		return err
	}
	defer done()
	if name := path.Base(p); p == "" || strings.HasSuffix(p, "/") || name == "." || name == ".." || name == "/" {
		return Errorf(CodeRuntimeError, "Invalid source path (no filename): %s", p)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pr, pw := io.Pipe()
	errc := make(chan error, 1)
	go func() {
		err := m.driver.CopyOut(ctx, b.Handle, boxPath(b, p), pw)
		pw.CloseWithError(err)
		errc <- err
	}()
	derr := readSingleFile(pr, w)
	pr.CloseWithError(io.ErrClosedPipe)
	cerr := <-errc
	switch {
	case cerr != nil && errors.Is(cerr, ErrNotFound):
		return downloadError(p, cerr)
	case derr != nil && !errors.Is(derr, io.ErrClosedPipe):
		return downloadError(p, derr)
	case cerr != nil && !errors.Is(cerr, io.ErrClosedPipe):
		return downloadError(p, cerr)
	}
	return nil
}

// readSingleFile copies the content of the first tar entry to w; the entry
// must be a regular file.
func readSingleFile(r io.Reader, w io.Writer) error {
	tr := tar.NewReader(r)
	hdr, err := tr.Next()
	if err != nil {
		if err == io.EOF {
			return fmt.Errorf("empty archive: %w", ErrNotFound)
		}
		return err
	}
	if hdr.Typeflag != tar.TypeReg {
		return fmt.Errorf("%s is not a regular file", hdr.Name)
	}
	if _, err := io.Copy(w, tr); err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, r) // let the producer finish cleanly
	return nil
}
