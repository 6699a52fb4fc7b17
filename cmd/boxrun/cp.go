package main

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/boxrun/boxrun"
	"github.com/boxrun/boxrun/client"
	"github.com/boxrun/boxrun/internal/tarutil"
	"github.com/peterbourgon/ff/v3/ffcli"
)

func newCpCmd(cfg *rootConfig) *ffcli.Command {
	fs := cfg.newFlagSet("cp")
	return &ffcli.Command{
		Name:       "cp",
		ShortUsage: "boxrun cp SRC BOX:DST | boxrun cp BOX:SRC DST",
		ShortHelp:  "copy files or directories between the host and a box",
		LongHelp: "Like docker cp: a DST that is an existing directory (or ends in /) receives SRC\n" +
			"under its own name; otherwise SRC is copied to DST. SRC - reads a tar stream from\n" +
			"stdin, DST - writes one to stdout. An argument is BOX:PATH when it has a ':' and\n" +
			"does not start with '/' or '.'.",
		FlagSet: fs,
		Options: ffOptions(),
		Exec: func(ctx context.Context, args []string) error {
			pos, err := exactArgs(fs, args, 2, "cp needs SRC and DST")
			if err != nil {
				return err
			}
			src, dst := pos[0], pos[1]
			if box, p, ok := remotePath(src); ok {
				svc, err := cfg.service(ctx)
				if err != nil {
					return err
				}
				return download(ctx, cfg, svc, box, p, dst)
			}
			if box, p, ok := remotePath(dst); ok {
				svc, err := cfg.service(ctx)
				if err != nil {
					return err
				}
				return upload(ctx, cfg, svc, src, box, p)
			}
			return usagef("One of src/dst must be in BOX:PATH format")
		},
	}
}

// remotePath splits BOX:PATH (spec §14.2's rule).
func remotePath(arg string) (box, p string, ok bool) {
	box, p, ok = strings.Cut(arg, ":")
	if !ok || box == "" || strings.HasPrefix(box, "/") || strings.HasPrefix(box, ".") {
		return "", "", false
	}
	return box, p, true
}

// upload copies the host path src to p in box.
func upload(ctx context.Context, cfg *rootConfig, svc *client.Client, src, box, p string) error {
	if !path.IsAbs(p) {
		return usagef("box path must be absolute: %s", p)
	}
	if src == "-" {
		if err := svc.CopyIn(ctx, box, p, cfg.stdin); err != nil {
			return err
		}
		fmt.Fprintf(cfg.stdout, "Uploaded to %s:%s\n", box, p)
		return nil
	}
	st, err := os.Stat(src)
	if err != nil {
		return fmt.Errorf("File not found: %s", src)
	}
	intoDir := strings.HasSuffix(p, "/") || remoteIsDir(ctx, svc, box, p)
	if st.Mode().IsRegular() {
		dest := p
		if intoDir {
			dest = path.Join(p, filepath.Base(src))
		}
		f, err := os.Open(src)
		if err != nil {
			return err
		}
		defer f.Close()
		tr := fileTar(f, path.Base(dest), st)
		err = svc.CopyIn(ctx, box, path.Dir(dest), tr)
		tr.CloseWithError(io.ErrClosedPipe) // unblocks the writer if the copy failed early
		if err != nil {
			return err
		}
		fmt.Fprintf(cfg.stdout, "Uploaded to %s:%s\n", box, dest)
		return nil
	}
	// A directory (or anything else): a tar stream through the archive
	// endpoint, its top entry renamed to the destination's name.
	destDir, from, to := p, filepath.Base(src), filepath.Base(src)
	if !intoDir {
		destDir, to = path.Dir(p), path.Base(p)
	}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(tarutil.Create(ctx, pw, src)) }()
	err = svc.CopyIn(ctx, box, destDir, renameTar(pr, from, to))
	pr.CloseWithError(io.ErrClosedPipe)
	if err != nil {
		return err
	}
	fmt.Fprintf(cfg.stdout, "Uploaded to %s:%s\n", box, path.Join(destDir, to))
	return nil
}

// download copies p in box to the host path dst. The archive comes from the
// box and is hostile: it is extracted with tarutil.ExtractUntrusted, confined
// to the one name it is copied to (never its siblings), through no symlink,
// without setuid/setgid bits or devices, and bounded by the box's disk size.
// A symlink at dst is replaced, never followed, so a symlink an earlier copy
// brought out of a box cannot redirect a later one.
func download(ctx context.Context, cfg *rootConfig, svc *client.Client, box, p, dst string) error {
	if dst == "-" {
		return svc.CopyOut(ctx, box, p, cfg.stdout)
	}
	from := path.Base(p)
	destDir, to := dst, from
	if from == "/" { // the whole box: dst is the directory that receives it
		to = "."
	} else if st, err := os.Lstat(strings.TrimRight(dst, "/")); err == nil && st.Mode()&os.ModeSymlink != 0 {
		if strings.HasSuffix(dst, "/") {
			return fmt.Errorf("%s is a symbolic link; not copying through it", dst)
		}
		destDir, to = filepath.Dir(dst), filepath.Base(dst)
	} else if err != nil || !st.IsDir() {
		if strings.HasSuffix(dst, "/") {
			destDir = dst
		} else {
			destDir, to = filepath.Dir(dst), filepath.Base(dst)
		}
	}
	lim := tarutil.Limits{}
	if b, err := svc.Get(ctx, box); err == nil && b.DiskSizeGB > 0 {
		lim.MaxBytes = b.DiskSizeGB << 30
	}
	if err := os.MkdirAll(destDir, 0o755); err != nil {
		return fmt.Errorf("Writing file: %w", err)
	}
	root, err := os.OpenRoot(destDir)
	if err != nil {
		return fmt.Errorf("Writing file: %w", err)
	}
	defer root.Close()
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pr, pw := io.Pipe()
	copyErr := make(chan error, 1)
	go func() {
		err := svc.CopyOut(cctx, box, p, pw)
		pw.CloseWithError(err)
		copyErr <- err
	}()
	var r io.Reader = pr
	if to != "." {
		r = renameTar(pr, from, to)
	}
	err = tarutil.ExtractUntrusted(cctx, r, root, to, lim)
	if err == nil {
		// The server's error, if it comes after the archive (bounded: the
		// box may pad the stream forever).
		if _, derr := io.CopyN(io.Discard, pr, 1<<20); derr != nil && !errors.Is(derr, io.EOF) {
			err = derr
		}
	}
	pr.CloseWithError(io.ErrClosedPipe)
	cancel()
	cerr := <-copyErr
	var apiErr *boxrun.Error
	if errors.As(cerr, &apiErr) { // the server refused: its error, not the truncated tar's
		return cerr
	}
	if err != nil {
		return err
	}
	if cerr != nil {
		return cerr
	}
	if _, err := root.Lstat(to); err != nil {
		return fmt.Errorf("File '%s' not found in box", p)
	}
	fmt.Fprintf(cfg.stdout, "Downloaded to %s\n", filepath.Join(destDir, to))
	return nil
}

// remoteIsDir reports whether p is a directory in box, by reading the first
// header of its archive (false when it is missing or cannot be read).
func remoteIsDir(ctx context.Context, svc *client.Client, box, p string) bool {
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(svc.CopyOut(cctx, box, p, pw)) }()
	defer pr.CloseWithError(io.ErrClosedPipe)
	hdr, err := tar.NewReader(pr).Next()
	return err == nil && hdr.Typeflag == tar.TypeDir
}

// fileTar streams a one-entry tar of the open regular file f, named name,
// with its permission bits (an executable stays executable, as with docker
// cp; setuid, setgid and sticky bits are not carried) and owned by root,
// as the multipart upload of the original API would leave it.
func fileTar(f *os.File, name string, st os.FileInfo) *io.PipeReader {
	pr, pw := io.Pipe()
	go func() {
		tw := tar.NewWriter(pw)
		err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: int64(st.Mode().Perm()),
			Size: st.Size(), ModTime: st.ModTime(), Format: tar.FormatPAX})
		if err == nil {
			// Exactly the size announced: a file that grows meanwhile
			// is cut, one that shrinks fails the copy.
			_, err = io.CopyN(tw, f, st.Size())
		}
		if err == nil {
			err = tw.Close()
		}
		pw.CloseWithError(err)
	}()
	return pr
}

// renameTar rewrites a tar stream whose entries start with from so that they
// start with to instead (hard link targets included).
func renameTar(r io.Reader, from, to string) io.Reader {
	if from == to {
		return r
	}
	pr, pw := io.Pipe()
	go func() {
		tr, tw := tar.NewReader(r), tar.NewWriter(pw)
		rename := func(name string) string {
			clean := strings.TrimPrefix(name, "./")
			if clean == from || clean == from+"/" {
				return to + strings.TrimPrefix(clean, from)
			}
			if rest, ok := strings.CutPrefix(clean, from+"/"); ok {
				return to + "/" + rest
			}
			return name
		}
		for {
			hdr, err := tr.Next()
			if errors.Is(err, io.EOF) {
				pw.CloseWithError(tw.Close())
				return
			}
			if err != nil {
				pw.CloseWithError(err)
				return
			}
			hdr.Name = rename(hdr.Name)
			if hdr.Typeflag == tar.TypeLink {
				hdr.Linkname = rename(hdr.Linkname)
			}
			if err := tw.WriteHeader(hdr); err != nil {
				pw.CloseWithError(err)
				return
			}
			if _, err := io.Copy(tw, tr); err != nil {
				pw.CloseWithError(err)
				return
			}
		}
	}()
	return pr
}
