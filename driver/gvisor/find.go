package gvisor

// FindRunsc returns the runsc binary cfg would use, by the lookup order
// documented on Config.Runsc. Its error wraps ErrUnsupported and says how
// to build runsc. It is what `boxrun doctor` checks.
func FindRunsc(cfg Config) (string, error) {
	return findBinary(cfg.Runsc, RunscEnv, cfg.Dir, RunscName)
}

// FindInit returns the binary cfg would run as the in-box init, by the
// lookup order documented on Config.InitPath, after checking that it is
// statically linked (its error then names the command that rebuilds it).
func FindInit(cfg Config) (string, error) {
	return findInit(cfg.InitPath, cfg.Dir)
}
