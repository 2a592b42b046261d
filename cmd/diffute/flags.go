package main

import (
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
)

// newFlagSet returns a flag set whose errors are returned, not printed and exited on.
func newFlagSet(env *environment, name, summary string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	fs.Usage = func() {
		fmt.Fprintf(env.stderr, "Usage: diffute %s\n\n", summary)
		fs.PrintDefaults()
		fmt.Fprintf(env.stderr, "\nEvery flag can also be set as DIFFUTE_<FLAG> (dashes as underscores).\n")
	}
	return fs
}

// parseFlags parses args, then fills each flag not given on the command line from its
// DIFFUTE_… environment variable. Flags win over the environment.
func parseFlags(fs *flag.FlagSet, env *environment, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return errUsage
		}
		return errUsage
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || err != nil {
			return
		}
		name := envName(f.Name)
		if v := env.getenv(name); v != "" {
			if e := fs.Set(f.Name, v); e != nil {
				err = fmt.Errorf("%s=%q: %w", name, v, e)
			}
		}
	})
	return err
}

// envName maps a flag name to its environment variable: data-dir → DIFFUTE_DATA_DIR.
func envName(flagName string) string {
	return "DIFFUTE_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// defaultDataDir is $XDG_DATA_HOME/diffute, else ~/.local/share/diffute.
func defaultDataDir(getenv func(string) string) string {
	if d := getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "diffute")
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".local", "share", "diffute")
	}
	return "diffute-data"
}

// stateFlags are the flags of every command that touches the database.
type stateFlags struct {
	dataDir     string
	databaseURL string
}

func (s *stateFlags) register(fs *flag.FlagSet, env *environment) {
	fs.StringVar(&s.dataDir, "data-dir", defaultDataDir(env.getenv), "directory for the SQLite database, media and keys")
	fs.StringVar(&s.databaseURL, "database-url", "", "database URL: sqlite:PATH or postgres://USER:PASSWORD@HOST:PORT/DB[?search_path=SCHEMA] (default: DATA_DIR/diffute.db)")
}

// sqlitePath returns the SQLite file the flags name.
func (s *stateFlags) sqlitePath() (string, error) {
	u := s.databaseURL
	switch {
	case u == "":
		return filepath.Join(s.dataDir, "diffute.db"), nil
	case strings.HasPrefix(u, "sqlite://"):
		return strings.TrimPrefix(u, "sqlite://"), nil
	case strings.HasPrefix(u, "sqlite:"):
		return strings.TrimPrefix(u, "sqlite:"), nil
	default:
		scheme, _, _ := strings.Cut(u, ":") // not the whole URL: it may hold a password
		return "", fmt.Errorf("--database-url: scheme %q unknown; want sqlite:PATH or postgres://…", scheme)
	}
}

// parseCIDRs reads --webhook-allow-cidr.
func parseCIDRs(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		p, err := netip.ParsePrefix(part)
		if err != nil {
			return nil, fmt.Errorf("--webhook-allow-cidr: %q is not a CIDR like 10.1.0.0/16", part)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}
