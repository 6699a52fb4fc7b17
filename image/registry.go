package image

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// RegistryConfig says how the Store reaches one registry host: through
// which mirrors, and whether without TLS verification. The zero value is a
// registry reached directly over verified HTTPS (or plain HTTP where the
// host is local, see WithInsecure).
type RegistryConfig struct {
	// Mirrors are endpoints tried in order before the registry itself, as
	// URLs "http[s]://host[:port][/path]": a path is put in front of the
	// repository (a pull-through cache serving "library/python" as
	// "dockerhub/library/python" is "https://cache.corp/dockerhub").
	// A mirror that fails in any way (unreachable, an error, the image
	// missing) passes the pull on to the next one.
	Mirrors []string `json:"mirrors,omitempty"`
	// MirrorsOnly forbids falling back to the registry itself when every
	// mirror failed.
	MirrorsOnly bool `json:"mirrors_only,omitempty"`
	// Insecure allows plain HTTP and HTTPS with any certificate (self-signed,
	// expired, another name) for this host, as Docker's insecure-registries.
	Insecure bool `json:"insecure,omitempty"`
}

// WithRegistry sets how host is reached. host is a registry name as it
// appears in image references ("docker.io", "ghcr.io", "registry.corp:5000");
// "docker.io", "index.docker.io" and "registry-1.docker.io" are one
// registry. Several WithRegistry for one host: the last wins. Mirror URLs
// are checked here: a bad one fails Open.
func WithRegistry(host string, c RegistryConfig) Option {
	return func(o *options) error {
		key, err := registryKey(host)
		if err != nil {
			return err
		}
		rc := &registryConf{config: c}
		for _, m := range c.Mirrors {
			ep, err := parseMirror(m)
			if err != nil {
				return fmt.Errorf("image: registry %s: %w", host, err)
			}
			rc.mirrors = append(rc.mirrors, ep)
		}
		if c.MirrorsOnly && len(rc.mirrors) == 0 {
			return fmt.Errorf("image: registry %s: mirrors_only without mirrors", host)
		}
		if o.registries == nil {
			o.registries = map[string]*registryConf{}
		}
		o.registries[key] = rc
		return nil
	}
}

// WithRegistryMirrors sets the mirrors of host (see RegistryConfig.Mirrors),
// keeping the host's other settings; fallback false forbids falling back
// to host itself.
func WithRegistryMirrors(host string, fallback bool, mirrors ...string) Option {
	return func(o *options) error {
		key, err := registryKey(host)
		if err != nil {
			return err
		}
		c := o.registryConfig(key)
		c.Mirrors, c.MirrorsOnly = mirrors, !fallback
		return WithRegistry(host, c)(o)
	}
}

// WithInsecureRegistries marks hosts as insecure (see
// RegistryConfig.Insecure), keeping their other settings.
func WithInsecureRegistries(hosts ...string) Option {
	return func(o *options) error {
		for _, h := range hosts {
			key, err := registryKey(h)
			if err != nil {
				return err
			}
			c := o.registryConfig(key)
			c.Insecure = true
			if err := WithRegistry(h, c)(o); err != nil {
				return err
			}
		}
		return nil
	}
}

func (o *options) registryConfig(key string) RegistryConfig {
	if rc := o.registries[key]; rc != nil {
		return rc.config
	}
	return RegistryConfig{}
}

// registryConf is a checked RegistryConfig.
type registryConf struct {
	config  RegistryConfig
	mirrors []*mirror
}

// mirror is a parsed mirror URL.
type mirror struct {
	url    string // as configured, for reports
	host   string // host[:port]
	prefix string // path put in front of repositories, without slashes around
	http   bool   // scheme http
}

// registryKey normalizes a registry host as name.Registry does
// ("docker.io" is "index.docker.io").
func registryKey(host string) (string, error) {
	if host == "registry-1.docker.io" {
		host = name.DefaultRegistry
	}
	if !validHost(host) {
		return "", fmt.Errorf("image: bad registry host %q: want host[:port]", host)
	}
	r, err := name.NewRegistry(host, name.StrictValidation)
	if err != nil {
		return "", fmt.Errorf("image: bad registry host %q: %w", host, err)
	}
	return r.RegistryStr(), nil
}

// parseMirror checks a mirror URL.
func parseMirror(s string) (*mirror, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("bad mirror URL %q: %w", s, err)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("bad mirror URL %q: want http:// or https://", s)
	case u.Host == "" || u.Opaque != "":
		return nil, fmt.Errorf("bad mirror URL %q: no host", s)
	case u.User != nil:
		return nil, fmt.Errorf("bad mirror URL %q: credentials belong in the Docker config, not the URL", s)
	case u.RawQuery != "" || u.Fragment != "":
		return nil, fmt.Errorf("bad mirror URL %q: no query or fragment allowed", s)
	}
	if !validHost(u.Host) {
		return nil, fmt.Errorf("bad mirror URL %q: bad host %q", s, u.Host)
	}
	prefix := strings.Trim(u.Path, "/")
	prefix = strings.TrimPrefix(prefix, "v2")
	prefix = strings.Trim(prefix, "/")
	if prefix != "" {
		if _, err := name.NewRepository(u.Host+"/"+prefix+"/x", name.StrictValidation); err != nil {
			return nil, fmt.Errorf("bad mirror URL %q: path: %w", s, err)
		}
	}
	return &mirror{url: s, host: u.Host, prefix: prefix, http: u.Scheme == "http"}, nil
}

// endpoint is one place to fetch a registry reference from.
type endpoint struct {
	ref    name.Reference
	name   string // what served: the mirror URL, or the registry host
	mirror bool
}

// endpoints returns where to look for ref, in order: its registry's
// mirrors, then (unless mirrors only) the registry itself.
func (s *Store) endpoints(ref name.Reference) ([]endpoint, error) {
	reg := ref.Context().RegistryStr()
	rc := s.opts.registries[reg]
	origin := endpoint{ref: ref, name: reg}
	if rc == nil {
		return []endpoint{origin}, nil
	}
	if rc.config.Insecure {
		r, err := reparse(ref, reg, ref.Context().RepositoryStr(), true)
		if err != nil {
			return nil, err
		}
		origin.ref = r
	}
	var out []endpoint
	for _, m := range rc.mirrors {
		repo := ref.Context().RepositoryStr()
		if m.prefix != "" {
			repo = m.prefix + "/" + repo
		}
		insecure := m.http
		if mk, err := registryKey(m.host); err == nil && s.opts.registries[mk] != nil && s.opts.registries[mk].config.Insecure {
			insecure = true
		}
		r, err := reparse(ref, m.host, repo, insecure)
		if err != nil {
			return nil, fmt.Errorf("mirror %s: %w", m.url, err)
		}
		out = append(out, endpoint{ref: r, name: m.url, mirror: true})
	}
	if !rc.config.MirrorsOnly {
		out = append(out, origin)
	}
	return out, nil
}

// reparse makes ref's tag or digest on another host and repository.
func reparse(ref name.Reference, host, repo string, insecure bool) (name.Reference, error) {
	var opts []name.Option
	if insecure {
		opts = append(opts, name.Insecure)
	}
	s := host + "/" + repo
	switch r := ref.(type) {
	case name.Digest:
		s += "@" + r.DigestStr()
	case name.Tag:
		s += ":" + r.TagStr()
	}
	return name.ParseReference(s, opts...)
}

// tryEndpoints calls fn on each endpoint of ref in turn until one
// succeeds, and returns which one did. When all fail, the error names
// each endpoint's failure; it wraps the last one (the registry's own,
// unless mirrors only). It stops at once when ctx ends.
func (s *Store) tryEndpoints(ctx context.Context, ref name.Reference, fn func(endpoint) error) (endpoint, error) {
	eps, err := s.endpoints(ref)
	if err != nil {
		return endpoint{}, err
	}
	var msgs []string
	var last error
	for _, ep := range eps {
		err := fn(ep)
		if err == nil {
			return ep, nil
		}
		if ctx.Err() != nil {
			return endpoint{}, err
		}
		last = err
		if len(eps) == 1 && !ep.mirror {
			break
		}
		kind := "registry"
		if ep.mirror {
			kind = "mirror"
			s.log.Warn("image: mirror failed, trying the next endpoint", "ref", ref.Name(), "mirror", ep.name, "err", err)
		}
		msgs = append(msgs, fmt.Sprintf("%s %s: %s", kind, ep.name, reason(err)))
	}
	if len(msgs) == 0 {
		return endpoint{}, last
	}
	return endpoint{}, &endpointsError{msg: strings.Join(msgs, "; "), err: last}
}

// endpointsError is the failure of every endpoint of a reference.
type endpointsError struct {
	msg string
	err error
}

func (e *endpointsError) Error() string { return e.msg }
func (e *endpointsError) Unwrap() error { return e.err }

// registryTransport returns the transport for registry requests: base (or
// remote.DefaultTransport), with TLS verification off for the insecure
// hosts only.
func registryTransport(base http.RoundTripper, regs map[string]*registryConf) (http.RoundTripper, error) {
	hosts := map[string]bool{}
	for key, rc := range regs {
		if rc.config.Insecure {
			hosts[key] = true
		}
	}
	if len(hosts) == 0 {
		return base, nil
	}
	if base == nil {
		base = remote.DefaultTransport
	}
	ht, ok := base.(*http.Transport)
	if !ok {
		return nil, errors.New("image: insecure registries need WithTransport to be an *http.Transport (or unset)")
	}
	loose := ht.Clone()
	if loose.TLSClientConfig == nil {
		loose.TLSClientConfig = &tls.Config{}
	}
	loose.TLSClientConfig.InsecureSkipVerify = true // only for hosts configured insecure
	return &hostTransport{strict: base, loose: loose, hosts: hosts}, nil
}

// hostTransport sends requests to insecure hosts through loose and every
// other request through strict.
type hostTransport struct {
	strict, loose http.RoundTripper
	hosts         map[string]bool
}

func (t *hostTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if t.hosts[req.URL.Host] {
		return t.loose.RoundTrip(req)
	}
	return t.strict.RoundTrip(req)
}
