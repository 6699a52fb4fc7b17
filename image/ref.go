package image

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Reference prefixes selecting local sources. Anything else is a registry
// reference, so a mistyped local path never turns into a registry pull of
// some other image: without its prefix, a path does not parse as a
// reference (or names a Docker Hub repository, as it would for Docker).
const (
	PrefixOCI           = "oci:"            // oci:/path/to/layout[:tag|@sha256:…]
	PrefixDockerArchive = "docker-archive:" // docker-archive:/path/to/image.tar[:repo:tag]
	PrefixDir           = "dir:"            // dir:/path/to/rootfs (development; not cached)
)

type sourceKind string

const (
	kindRegistry sourceKind = "registry"
	kindOCI      sourceKind = "oci"
	kindArchive  sourceKind = "docker-archive"
	kindDir      sourceKind = "dir"
)

// source is a parsed image reference.
type source struct {
	kind  sourceKind
	given string // as the caller wrote it
	key   string // normalized; the key of index.Refs

	ref  name.Reference // kindRegistry
	path string         // local kinds: absolute path

	tag    string    // kindOCI: org.opencontainers.image.ref.name to select
	digest v1.Hash   // kindOCI: manifest digest to select
	atag   *name.Tag // kindArchive: image to select in a multi-image tarball
}

// parseRef parses an image reference.
func parseRef(ref string, opts []name.Option) (*source, error) {
	src := &source{given: ref}
	switch {
	case strings.HasPrefix(ref, PrefixDir):
		src.kind = kindDir
		p, err := localPath(strings.TrimPrefix(ref, PrefixDir))
		if err != nil {
			return nil, err
		}
		src.path, src.key = p, PrefixDir+p
		return src, nil

	case strings.HasPrefix(ref, PrefixOCI):
		src.kind = kindOCI
		rest := strings.TrimPrefix(ref, PrefixOCI)
		p, sel := splitExisting(rest, "@:")
		abs, err := localPath(p)
		if err != nil {
			return nil, err
		}
		// The key must parse back to the same layout and selector (a
		// missing path holding '@' or ':' would split differently).
		if ap, asel := splitExisting(abs+sel, "@:"); ap != abs || asel != sel {
			return nil, fmt.Errorf("ambiguous OCI layout reference %q: name an existing layout directory", ref)
		}
		src.path, src.key = abs, PrefixOCI+abs+sel
		switch {
		case strings.HasPrefix(sel, "@"):
			h, err := v1.NewHash(sel[1:])
			if err != nil {
				return nil, fmt.Errorf("bad digest in %q: %w", ref, err)
			}
			src.digest = h
		case strings.HasPrefix(sel, ":"):
			src.tag = sel[1:]
		}
		return src, nil

	case strings.HasPrefix(ref, PrefixDockerArchive):
		src.kind = kindArchive
		rest := strings.TrimPrefix(ref, PrefixDockerArchive)
		p, sel := splitExisting(rest, ":")
		abs, err := localPath(p)
		if err != nil {
			return nil, err
		}
		if ap, _ := splitExisting(abs, ":"); ap != abs {
			return nil, fmt.Errorf("ambiguous docker-archive reference %q: name an existing archive file", ref)
		}
		src.path, src.key = abs, PrefixDockerArchive+abs
		if sel != "" {
			t, err := name.NewTag(sel[1:], opts...)
			if err != nil {
				return nil, fmt.Errorf("bad tag in %q: %w", ref, err)
			}
			src.atag = &t
			src.key += ":" + t.Name()
		}
		return src, nil
	}

	if strings.HasPrefix(ref, "/") || strings.HasPrefix(ref, ".") || strings.HasPrefix(ref, "~") {
		return nil, fmt.Errorf("%q is a path, not an image reference: local images need a %s, %s or %s prefix",
			ref, PrefixOCI, PrefixDockerArchive, PrefixDir)
	}
	r, err := name.ParseReference(ref, opts...)
	if err == nil {
		err = checkDockerName(r)
	}
	if err != nil {
		return nil, fmt.Errorf("invalid reference (local images need a %s, %s or %s prefix): %w",
			PrefixOCI, PrefixDockerArchive, PrefixDir, err)
	}
	src.kind, src.ref, src.key = kindRegistry, r, r.Name()
	return src, nil
}

// splitExisting splits s into a path that exists and the selector after
// it, which starts with one of the characters in seps. Paths may contain
// those characters themselves, so the longest existing prefix wins; if no
// prefix exists, s is all path (and will fail to open).
func splitExisting(s, seps string) (p, sel string) {
	if _, err := os.Stat(s); err == nil {
		return s, ""
	}
	for i := len(s) - 1; i > 0; i-- {
		if !strings.ContainsRune(seps, rune(s[i])) {
			continue
		}
		if _, err := os.Stat(s[:i]); err == nil {
			return s[:i], s[i:]
		}
	}
	return s, ""
}

// checkDockerName rejects references that Docker would not parse.
func checkDockerName(r name.Reference) error {
	// Docker's grammar for a registry host and a repository path component
	// (go-containerregistry's parser accepts more, such as "./x").
	componentRE := regexp.MustCompile(`^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$`)
	if host := r.Context().RegistryStr(); !validHost(host) {
		return fmt.Errorf("bad registry host %q", host)
	}
	for _, c := range strings.Split(r.Context().RepositoryStr(), "/") {
		if !componentRE.MatchString(c) {
			return fmt.Errorf("bad repository name component %q", c)
		}
	}
	return nil
}

// validHost reports whether host is host[:port] in Docker's grammar.
func validHost(host string) bool {
	hostRE := regexp.MustCompile(`^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*|\[[0-9a-fA-F:.]+\])(?::[0-9]+)?$`)
	return hostRE.MatchString(host)
}

func localPath(p string) (string, error) {
	if p == "" {
		return "", fmt.Errorf("empty path")
	}
	return filepath.Abs(p)
}
