package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/diffute/diffute/hub"
	"github.com/diffute/diffute/tinymodel"
)

// modelSource turns model names into local folders: the project's tiny models are
// written on first use, every other name must be in the Hugging Face cache.
type modelSource struct {
	hub     *hub.Client
	tinyDir string
	getenv  func(string) string
}

func newModelSource(getenv func(string) string) (*modelSource, error) {
	c, err := hub.FromEnv(getenv)
	if err != nil {
		return nil, err
	}
	return &modelSource{hub: c, tinyDir: tinyModelsDir(getenv), getenv: getenv}, nil
}

// tinyModelsDir is DIFFUTE_TINY_DIR, else $XDG_CACHE_HOME/diffute/tiny, else
// ~/.cache/diffute/tiny.
func tinyModelsDir(getenv func(string) string) string {
	if d := getenv("DIFFUTE_TINY_DIR"); d != "" {
		return d
	}
	if d := getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(d, "diffute", "tiny")
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".cache", "diffute", "tiny")
	}
	return filepath.Join(os.TempDir(), "diffute-tiny")
}

// Resolve returns the folder of model name.
func (s *modelSource) Resolve(_ context.Context, name string) (string, error) {
	if tinymodel.IsTiny(name) {
		return tinymodel.Ensure(filepath.Join(s.tinyDir, filepath.FromSlash(name)), name)
	}
	dir, err := s.hub.Snapshot(name, "main")
	if err != nil {
		return "", fmt.Errorf("model %s is not in the Hugging Face cache (run: diffute models pull %s): %w", name, name, err)
	}
	return dir, nil
}

// served returns the models a deployment serves: the names given, or by default the
// tiny models and every model with an ONNX layout in the cache.
func (s *modelSource) served(flagValue string) ([]string, error) {
	if strings.TrimSpace(flagValue) != "" {
		var names []string
		for _, n := range strings.Split(flagValue, ",") {
			if n = strings.TrimSpace(n); n != "" {
				names = append(names, n)
			}
		}
		return names, nil
	}
	names := tinymodel.Names()
	cached, err := s.hub.List()
	if err != nil {
		return names, nil // an unreadable cache serves only the tiny models
	}
	for _, m := range cached {
		if m.HasONNX {
			names = append(names, m.Repo)
		}
	}
	return names, nil
}

func runModels(ctx context.Context, env *environment, args []string) error {
	const summary = "models list | pull NAME [--revision R] | make-tiny [--dir DIR]"
	if len(args) == 0 {
		fmt.Fprintf(env.stderr, "Usage: diffute %s\n", summary)
		return errUsage
	}
	src, err := newModelSource(env.getenv)
	if err != nil {
		return err
	}
	switch args[0] {
	case "list":
		fs := newFlagSet(env, "models list", "models list")
		if err := parseFlags(fs, env, args[1:]); err != nil {
			return err
		}
		for _, name := range tinymodel.Names() {
			state := "generated on first use"
			if _, err := os.Stat(filepath.Join(src.tinyDir, filepath.FromSlash(name), "model_index.json")); err == nil {
				state = "generated"
			}
			fmt.Fprintf(env.stdout, "%-45s tiny test model (noise, not pictures), %s\n", name, state)
		}
		cached, err := src.hub.List()
		if err != nil {
			return err
		}
		for _, m := range cached {
			onnx := "no ONNX layout"
			if m.HasONNX {
				onnx = "ONNX"
			}
			fmt.Fprintf(env.stdout, "%-45s %s, %.1f MB, revisions %s\n", m.Repo, onnx, float64(m.Size)/1e6, strings.Join(m.Revisions, ","))
		}
		return nil
	case "pull":
		fs := newFlagSet(env, "models pull", "models pull NAME [--revision R]")
		revision := fs.String("revision", "main", "branch, tag or commit to download")
		name, rest := "", args[1:]
		if len(rest) > 0 && !strings.HasPrefix(rest[0], "-") {
			name, rest = rest[0], rest[1:]
		}
		if err := parseFlags(fs, env, rest); err != nil {
			return err
		}
		if name == "" && fs.NArg() > 0 {
			name = fs.Arg(0)
		}
		if name == "" {
			return errors.New("models pull: name a model, for example: diffute models pull stabilityai/sdxl-turbo")
		}
		if tinymodel.IsTiny(name) {
			dir, err := src.Resolve(ctx, name)
			if err != nil {
				return err
			}
			fmt.Fprintln(env.stdout, dir)
			return nil
		}
		if isTerminal(env.stderr) {
			src.hub.Progress = hub.NewProgressBar(env.stderr)
		}
		dir, err := src.hub.Pull(ctx, name, hub.PullOptions{Revision: *revision})
		if err != nil {
			return err
		}
		fmt.Fprintln(env.stdout, dir)
		return nil
	case "make-tiny":
		fs := newFlagSet(env, "models make-tiny", "models make-tiny [--dir DIR]")
		dir := fs.String("dir", src.tinyDir, "where to write the tiny models (one folder per name)")
		if err := parseFlags(fs, env, args[1:]); err != nil {
			return err
		}
		for _, name := range tinymodel.Names() {
			out := filepath.Join(*dir, filepath.FromSlash(name))
			if err := tinymodel.Write(out, name); err != nil {
				return err
			}
			fmt.Fprintf(env.stdout, "%s\t%s\n", name, out)
		}
		return nil
	default:
		fmt.Fprintf(env.stderr, "diffute models: unknown subcommand %q\nUsage: diffute %s\n", args[0], summary)
		return errUsage
	}
}

// isTerminal reports whether w is a character device (a terminal), for progress bars.
func isTerminal(w any) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
