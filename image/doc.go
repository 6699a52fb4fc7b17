// Package image turns OCI image references into root filesystems for
// boxes: it is BoxRun's sandbox.ImageStore.
//
// # Overview
//
// A Store is a content-addressed cache in one directory. Pull resolves a
// reference (a registry image such as "alpine" or "ghcr.io/x/y@sha256:…",
// an OCI layout "oci:/path", a docker save tarball "docker-archive:/path",
// or an unpacked directory "dir:/path"), fetches only what is not cached,
// and returns a sandbox.Image: the path of a read-only rootfs and the image
// config (Env, WorkingDir, Entrypoint, Cmd, User). Registry access goes
// through github.com/google/go-containerregistry, with the Docker credential
// keychain by default.
//
// Each layer blob is verified against its digest as it streams in, kept
// under blobs/, and unpacked once into its own directory under layers/
// (its tar's digest, the diff ID, verified too). An image's rootfs is its
// layers applied in order under rootfs/, keyed by the OCI chain ID, with
// files hard-linked from the layer directories; every box of an image, and
// every image with the same layers, shares it. Drivers use it as an
// overlayfs lower directory (or read-only mount) and must never write to it.
//
// Unpacking never leaves its directory: entries with "..", paths through
// symlinks and hard links to outside files fail the pull; absolute names are
// taken as relative to the rootfs. Whiteouts and opaque directories delete
// from the layers below as in overlayfs. Device nodes are made only as root.
//
// # Usage
//
//	s, err := image.Open(filepath.Join(dir, "images"))
//	if err != nil { … }
//	defer s.Close()
//	img, err := s.Pull(ctx, "alpine:3.20", func(p boxrun.PullProgress) { … })
//	// img.Rootfs is ready; img.Config holds the image's defaults.
//
// Without a registry, BuildBusyboxLayout writes a small image around a
// static busybox into an OCI layout to pull as "oci:/path/to/layout".
// Package imagetest builds images and serves them from an in-process
// registry for tests.
//
// # Air-gapped and corporate machines
//
// Load imports docker-archive and OCI-layout tarballs under the archive's
// own names (and LoadOptions.Tags), Tag adds names, and Save writes
// docker-archives that `docker load` and Load read back with the same image
// ID. Names so given are local: pulls under the Store's policy, PullMissing
// and PullNever use them without contacting any registry (PullOptions,
// PullWith). Every image keeps its config and layer blobs for Save.
//
// WithRegistry, WithRegistryMirrors and WithInsecureRegistries set, per
// registry host, mirrors tried in order before the registry itself (unless
// mirrors only) and hosts reached over plain HTTP or unverified TLS. The
// endpoint that served a pull is reported in Image.Endpoint and
// ImageInfo.Endpoint.
//
// # Concurrency and crashes
//
// Concurrent Pulls of one reference share one pull (and its progress);
// different images sharing layers fetch each layer once. Everything is
// written into a private work directory and renamed into place, so a crash
// leaves nothing half-made in use, and the next Open removes the leftovers.
// Prune waits for pulls in progress, and pulls wait for Prune. Several
// processes may share the directory.
//
// # Errors
//
// Pull returns *boxrun.Error values: IMAGE_PULL_FAILED ("Failed to pull
// image '<ref>': <reason>", matching boxrun.ErrImagePull) with the
// registry's own reason, or CANCELED / TIMEOUT when the caller's context
// ends first. The underlying cause (such as *transport.Error) stays
// reachable with errors.As.
package image
