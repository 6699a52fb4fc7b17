package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/boxrun/boxrun/image"
)

// registryFlags are serve's registry settings: mirrors per registry host,
// hosts reached without them, insecure hosts, and a JSON file of the same.
type registryFlags struct {
	mirrors     stringList // HOST=URL
	mirrorsOnly stringList // HOST
	insecure    stringList // HOST
	file        string
}

func (r *registryFlags) register(fs *flag.FlagSet, getenv func(string) string) {
	fs.Var(&r.mirrors, "registry-mirror", "HOST=URL: pull HOST's images through the mirror URL first, in the order given (repeatable; env BOXRUN_REGISTRY_MIRRORS, comma-separated)")
	fs.Var(&r.mirrorsOnly, "registry-mirrors-only", "HOST: never fall back from HOST's mirrors to HOST itself (repeatable; env BOXRUN_REGISTRY_MIRRORS_ONLY)")
	fs.Var(&r.insecure, "insecure-registry", "HOST[:PORT]: reach this registry over plain HTTP or HTTPS without certificate checks (repeatable; env BOXRUN_INSECURE_REGISTRIES)")
	fs.StringVar(&r.file, "registries", getenv("BOXRUN_REGISTRIES"), `JSON file {"HOST": {"mirrors": [URL...], "mirrors_only": bool, "insecure": bool}} (env BOXRUN_REGISTRIES)`)
	for env, l := range map[string]*stringList{
		"BOXRUN_REGISTRY_MIRRORS": &r.mirrors, "BOXRUN_REGISTRY_MIRRORS_ONLY": &r.mirrorsOnly, "BOXRUN_INSECURE_REGISTRIES": &r.insecure,
	} {
		for _, v := range strings.Split(getenv(env), ",") {
			if v = strings.TrimSpace(v); v != "" {
				*l = append(*l, v)
			}
		}
	}
}

// options turns the settings into image options (the file first, the
// flags on top of it), checked: a bad host or mirror URL is a usage error
// before anything touches the state directory.
func (r *registryFlags) options() ([]image.Option, error) {
	conf := map[string]image.RegistryConfig{}
	if r.file != "" {
		b, err := os.ReadFile(r.file)
		if err != nil {
			return nil, usagef("--registries: %v", err)
		}
		dec := json.NewDecoder(strings.NewReader(string(b)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&conf); err != nil {
			return nil, usagef("--registries %s: %v", r.file, err)
		}
	}
	for _, m := range r.mirrors {
		host, u, ok := strings.Cut(m, "=")
		if !ok || host == "" || u == "" {
			return nil, usagef("invalid --registry-mirror %q (want HOST=URL, e.g. docker.io=https://mirror.example)", m)
		}
		c := conf[host]
		c.Mirrors = append(c.Mirrors, u)
		conf[host] = c
	}
	for _, h := range r.mirrorsOnly {
		c := conf[h]
		c.MirrorsOnly = true
		conf[h] = c
	}
	for _, h := range r.insecure {
		c := conf[h]
		c.Insecure = true
		conf[h] = c
	}
	hosts := make([]string, 0, len(conf))
	for h := range conf {
		hosts = append(hosts, h)
	}
	sort.Strings(hosts)
	var opts []image.Option
	for _, h := range hosts {
		opts = append(opts, image.WithRegistry(h, conf[h]))
	}
	if err := image.CheckOptions(opts...); err != nil {
		return nil, usagef("%v", err)
	}
	return opts, nil
}

// describe is a one-line summary for the start-up log.
func describeRegistries(opts []image.Option, r *registryFlags) string {
	if len(opts) == 0 {
		return ""
	}
	return fmt.Sprintf("mirrors %v, mirrors only %v, insecure %v, file %q", r.mirrors, r.mirrorsOnly, r.insecure, r.file)
}
