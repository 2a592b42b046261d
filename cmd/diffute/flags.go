package main

import (
	"flag"
	"fmt"
	"io"
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
		fmt.Fprintf(fs.Output(), "Usage: diffute %s\n\n", summary)
		printFlags(fs.Output(), fs)
		fmt.Fprintf(fs.Output(), "\nEvery flag can also be set as DIFFUTE_<FLAG> (dashes as underscores).\n")
	}
	return fs
}

// printFlags lists fs's flags as --name, the one style of every command's help and
// of serve's grouped help (flag.PrintDefaults writes -name).
func printFlags(w io.Writer, fs *flag.FlagSet) {
	fs.VisitAll(func(f *flag.Flag) {
		name, usage := flag.UnquoteUsage(f)
		line := "  --" + f.Name
		if name != "" {
			line += " " + name
		}
		if def := docDefault(f); def != "" && def != "0" {
			usage += " (default " + def + ")"
		}
		fmt.Fprintf(w, "%-30s %s\n", line, usage)
	})
}

// parseFlags parses args, flags and positional arguments in any order ("--" ends
// the flags), then fills each flag not given on the command line from its
// DIFFUTE_… environment variable. Flags win over the environment. -h or --help
// prints the command's usage on stdout and returns errHelp; afterwards fs.Args()
// holds the positional arguments.
func parseFlags(fs *flag.FlagSet, env *environment, args []string) error {
	if wantsHelp(args) {
		// Asked for, the usage is the answer: stdout. A Usage that writes to
		// env.stderr rather than fs.Output() is redirected too.
		stderr := env.stderr
		env.stderr = env.stdout
		fs.SetOutput(env.stdout)
		fs.Usage()
		env.stderr = stderr
		fs.SetOutput(stderr)
		return errHelp
	}
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return errUsage // the flag package printed the error and the usage
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		// fs.Parse stops at the first non-flag, or consumes a "--" before it.
		if len(args) > len(rest) && args[len(args)-len(rest)-1] == "--" {
			positional = append(positional, rest...)
			break
		}
		positional, args = append(positional, rest[0]), rest[1:]
	}
	if err := fs.Parse(append([]string{"--"}, positional...)); err != nil {
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

// parseFlagsNoArgs is parseFlags for a command that takes no positional
// arguments: one is an error, never silently ignored (often an unquoted value).
func parseFlagsNoArgs(fs *flag.FlagSet, env *environment, args []string) error {
	if err := parseFlags(fs, env, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%s: unexpected argument %q (quote a value with spaces: --prompt \"a red fox\")", fs.Name(), fs.Arg(0))
	}
	return nil
}

// wantsHelp reports whether args ask for help before any "--".
func wantsHelp(args []string) bool {
	for _, a := range args {
		switch a {
		case "--":
			return false
		case "-h", "-help", "--help":
			return true
		}
	}
	return false
}

// isHelp reports whether a subcommand position holds a request for help.
func isHelp(arg string) bool {
	return arg == "help" || wantsHelp([]string{arg})
}

// subcommandUsage handles a command group's first argument when it is missing or
// asks for help: usage on stderr and errUsage, or on stdout and errHelp. It
// returns nil when args name a subcommand to run.
func subcommandUsage(env *environment, args []string, summary string) error {
	if len(args) == 0 {
		fmt.Fprintf(env.stderr, "Usage: diffute %s\n", summary)
		return errUsage
	}
	if isHelp(args[0]) {
		fmt.Fprintf(env.stdout, "Usage: diffute %s\n\nRun 'diffute %s SUBCOMMAND -h' for a subcommand's flags.\n",
			summary, strings.Fields(summary)[0])
		return errHelp
	}
	return nil
}

// unknownSubcommand reports a subcommand not in known, suggesting the nearest.
func unknownSubcommand(env *environment, group, sub, summary string, known ...string) error {
	fmt.Fprintf(env.stderr, "diffute %s: unknown subcommand %q%s\nUsage: diffute %s\n", group, sub, didYouMean(sub, known), summary)
	return errUsage
}

// didYouMean returns "; did you mean X?" for the known name nearest to name, or
// "" when none is near.
func didYouMean(name string, known []string) string {
	best, bestDist := "", 3 // at most two edits, or a prefix
	for _, k := range known {
		d := editDistance(name, k)
		if len(name) >= 2 && strings.HasPrefix(k, name) {
			d = min(d, 1)
		}
		if d < bestDist {
			best, bestDist = k, d
		}
	}
	if best == "" || len(name) <= bestDist {
		return ""
	}
	return fmt.Sprintf("; did you mean %q?", best)
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
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
