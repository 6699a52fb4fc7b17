package imagetest

import (
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// RegistryOption configures Registry.
type RegistryOption func(*registryConfig)

type registryConfig struct {
	wrap []func(http.Handler) http.Handler
}

// WithMiddleware wraps the registry handler, for example to count
// requests or to fail some. Several wrap in order: the first is outermost.
func WithMiddleware(wrap func(http.Handler) http.Handler) RegistryOption {
	return func(c *registryConfig) { c.wrap = append(c.wrap, wrap) }
}

// WithBasicAuth makes every request need HTTP basic auth as user:password
// (401 with a registry error body otherwise).
func WithBasicAuth(user, password string) RegistryOption {
	return WithMiddleware(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			u, p, ok := r.BasicAuth()
			if !ok || u != user || p != password {
				w.Header().Set("WWW-Authenticate", `Basic realm="imagetest"`)
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusUnauthorized)
				io.WriteString(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`)
				return
			}
			next.ServeHTTP(w, r)
		})
	})
}

// Registry starts an in-memory registry (go-containerregistry's
// pkg/registry) on a loopback httptest server, stopped when the test ends,
// and returns its host:port. Being on 127.0.0.1, it is reached over plain
// HTTP without further options.
func Registry(tb testing.TB, opts ...RegistryOption) string {
	tb.Helper()
	var c registryConfig
	for _, o := range opts {
		o(&c)
	}
	h := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	for i := len(c.wrap) - 1; i >= 0; i-- {
		h = c.wrap[i](h)
	}
	srv := httptest.NewServer(h)
	tb.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// Push uploads img to host as repo ("name" or "name:tag"; tag latest by
// default) and returns the full reference, host/name:tag.
func Push(tb testing.TB, host, repo string, img v1.Image, opts ...remote.Option) string {
	tb.Helper()
	ref, err := name.ParseReference(host + "/" + repo)
	if err != nil {
		tb.Fatal(err)
	}
	if err := remote.Write(ref, img, opts...); err != nil {
		tb.Fatal(err)
	}
	return ref.Name()
}

// PushIndex uploads a multi-arch index (and its images) like Push.
func PushIndex(tb testing.TB, host, repo string, idx v1.ImageIndex, opts ...remote.Option) string {
	tb.Helper()
	ref, err := name.ParseReference(host + "/" + repo)
	if err != nil {
		tb.Fatal(err)
	}
	if err := remote.WriteIndex(ref, idx, opts...); err != nil {
		tb.Fatal(err)
	}
	return ref.Name()
}

// Keychain returns a keychain that gives user:password to every registry.
func Keychain(user, password string) authn.Keychain {
	return staticKeychain{&authn.Basic{Username: user, Password: password}}
}

type staticKeychain struct{ auth authn.Authenticator }

func (k staticKeychain) Resolve(authn.Resource) (authn.Authenticator, error) { return k.auth, nil }
