package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"

	"github.com/diffute/diffute/hub"
	"github.com/diffute/diffute/tinymodel"
)

// modelSource turns model names into local paths: the project's tiny models
// are written on first use, a name the operator served as a local path (or an
// alias of one, "mymodel=/models/dreamshaper.safetensors") is that path, and
// every other name must be a Hub repository in the Hugging Face cache, in the
// diffusers or the ONNX layout. Resolve returns a folder or a .safetensors
// file; the engine's loader tells them apart. A client never makes the server
// open a path: a name that looks like one and was not served is refused.
type modelSource struct {
	hub     *hub.Client
	tinyDir string
	getenv  func(string) string

	mu sync.RWMutex
	// listed maps each served name with a target of its own to that target:
	// an absolute local path, a Hub repository id or a tiny model name.
	listed map[string]string
	// unavailable describes listed models that cannot be found now, for the
	// server to report at start.
	unavailable []string
}

func newModelSource(getenv func(string) string) (*modelSource, error) {
	c, err := hub.FromEnv(getenv)
	if err != nil {
		return nil, err
	}
	return &modelSource{hub: c, tinyDir: tinyModelsDir(getenv), getenv: getenv, listed: map[string]string{}}, nil
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

// Resolve returns the path of model name: a folder (diffusers or ONNX layout)
// or a single-file .safetensors checkpoint.
func (s *modelSource) Resolve(_ context.Context, name string) (string, error) {
	s.mu.RLock()
	target, listed := s.listed[name]
	s.mu.RUnlock()
	if !listed {
		target = name
	}
	if tinymodel.IsTiny(target) {
		return tinymodel.Ensure(filepath.Join(s.tinyDir, filepath.FromSlash(target)), target)
	}
	if listed && filepath.IsAbs(target) { // a local path the operator served
		if _, err := os.Stat(target); err != nil {
			return "", fmt.Errorf("model %s: %w", name, err)
		}
		return target, nil
	}
	if looksLikePath(target) {
		return "", fmt.Errorf("model %q is a local path this deployment does not serve; the operator lists local models in --models", truncateName(name))
	}
	if err := hub.ValidateRepo(target); err != nil {
		return "", fmt.Errorf("model %q is neither a served model nor a Hugging Face repository id", truncateName(name))
	}
	dir, err := s.hub.Snapshot(target, "main")
	if err != nil {
		return "", fmt.Errorf("model %s is not in the Hugging Face cache (run: diffute models pull %s): %w", target, target, err)
	}
	return dir, nil
}

// truncateName keeps a client-supplied name short in error messages.
func truncateName(s string) string {
	if len(s) > 100 {
		return s[:100] + "…"
	}
	return s
}

// looksLikePath reports whether a model name is written as a file system path
// rather than a Hub repository id. It never touches the file system, so it is
// safe on names clients send.
func looksLikePath(name string) bool {
	lower := strings.ToLower(name)
	return filepath.IsAbs(name) || name == "." || name == ".." || name == "~" ||
		strings.HasPrefix(name, "./") || strings.HasPrefix(name, "../") || strings.HasPrefix(name, "~/") ||
		strings.ContainsRune(name, '\\') || strings.HasSuffix(lower, ".safetensors") || strings.HasSuffix(lower, ".ckpt")
}

// served returns the models a deployment serves: the names given, or by default the
// tiny models and every model in the cache with a complete diffusers or ONNX layout.
// Each entry of flagValue is a model (a Hub repository id, a tiny model, a local
// folder or .safetensors file) or NAME=MODEL, which serves MODEL under NAME. A
// local path that does not exist is an error; a Hub model not in the cache is
// recorded in s.unavailable for the server to report.
func (s *modelSource) served(flagValue string) ([]string, error) {
	if strings.TrimSpace(flagValue) == "" {
		names := tinymodel.Names()
		cached, err := s.hub.List()
		if err != nil {
			return names, nil // an unreadable cache serves only the tiny models
		}
		for _, m := range cached {
			if m.HasONNX || m.HasDiffusers {
				names = append(names, m.Repo)
			}
		}
		return names, nil
	}
	var names []string
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, entry := range strings.Split(flagValue, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		name, target, aliased := strings.Cut(entry, "=")
		name, target = strings.TrimSpace(name), strings.TrimSpace(target)
		if !aliased {
			target = name
		}
		if name == "" || target == "" {
			return nil, fmt.Errorf("--models %q: want MODEL or NAME=MODEL", entry)
		}
		if slices.Contains(names, name) {
			return nil, fmt.Errorf("--models: %q is listed twice", name)
		}
		switch {
		case tinymodel.IsTiny(target):
			if aliased {
				s.listed[name] = target
			}
		case isOperatorPath(target):
			p, err := localModel(target)
			if err != nil {
				return nil, fmt.Errorf("--models %s: %w", entry, err)
			}
			s.listed[name] = p
		default:
			if err := hub.ValidateRepo(target); err != nil {
				return nil, fmt.Errorf("--models %s: %q is not a local path, a tiny model or a Hugging Face repository id", entry, target)
			}
			if aliased {
				s.listed[name] = target
			}
			if _, err := s.hub.Snapshot(target, "main"); err != nil {
				s.unavailable = append(s.unavailable, fmt.Sprintf("%s: %s is not in the Hugging Face cache (run: diffute models pull %s)", name, target, target))
			}
		}
		names = append(names, name)
	}
	if len(names) == 0 {
		return nil, errors.New("--models: no model named")
	}
	return names, nil
}

// isOperatorPath reports whether a model the operator named is a local path:
// written as one, or an existing file or folder (as diffusers' from_pretrained
// prefers a local folder over a Hub id of the same name).
func isOperatorPath(target string) bool {
	if looksLikePath(target) {
		return true
	}
	_, err := os.Stat(target)
	return err == nil
}

// localModel checks a local model path and makes it absolute: a folder, or a
// .safetensors single-file checkpoint.
func localModel(p string) (string, error) {
	if rest, ok := strings.CutPrefix(p, "~/"); ok {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", err
		}
		p = filepath.Join(home, rest)
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", err
	}
	st, err := os.Stat(abs)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("%s does not exist", abs)
		}
		return "", err
	}
	switch {
	case st.IsDir():
	case st.Mode().IsRegular() && strings.HasSuffix(strings.ToLower(abs), ".safetensors"):
	default:
		return "", fmt.Errorf("%s is neither a model folder nor a .safetensors checkpoint", abs)
	}
	return abs, nil
}

func runModels(ctx context.Context, env *environment, args []string) error {
	const summary = "models list [--models LIST] | pull NAME [--revision R] [--format safetensors|onnx] | make-tiny [--dir DIR] | make-random --family sd15|sd21|sdxl --out DIR"
	if err := subcommandUsage(env, args, summary); err != nil {
		return err
	}
	src, err := newModelSource(env.getenv)
	if err != nil {
		return err
	}
	switch args[0] {
	case "list":
		fs := newFlagSet(env, "models list", "models list [--models LIST]")
		served := fs.String("models", "", "describe the models a deployment with this --models value serves (default: the tiny models and the Hugging Face cache)")
		if err := parseFlagsNoArgs(fs, env, args[1:]); err != nil {
			return err
		}
		w := tabwriter.NewWriter(env.stdout, 2, 8, 2, ' ', 0)
		fmt.Fprintln(w, "MODEL\tFAMILY\tFORMAT\tPRECISION\tSIZE\tSOURCE")
		if strings.TrimSpace(*served) != "" {
			names, err := src.served(*served)
			if err != nil {
				return err
			}
			for _, name := range names {
				p, err := src.Resolve(ctx, name)
				if err != nil {
					fmt.Fprintf(w, "%s\t-\t-\t-\t-\tunavailable: %v\n", name, err)
					continue
				}
				fmt.Fprintf(w, "%s\t%s\t%s\n", name, describeModel(p), p)
			}
			return w.Flush()
		}
		for _, name := range tinymodel.Names() {
			dir := filepath.Join(src.tinyDir, filepath.FromSlash(name))
			if _, err := os.Stat(filepath.Join(dir, "model_index.json")); err != nil {
				fmt.Fprintf(w, "%s\t-\t-\t-\t-\ttiny test model (noise, not pictures), generated on first use\n", name)
				continue
			}
			fmt.Fprintf(w, "%s\t%s\ttiny test model (noise, not pictures)\n", name, describeModel(dir))
		}
		cached, err := src.hub.List()
		if err != nil {
			return err
		}
		for _, m := range cached {
			origin := "Hugging Face cache, revisions " + strings.Join(m.Revisions, ",")
			dir, err := src.hub.Snapshot(m.Repo, "main")
			if err != nil {
				fmt.Fprintf(w, "%s\t-\t-\t-\t%s\t%s (incomplete: run diffute models pull %s)\n", m.Repo, formatBytes(m.Size), origin, m.Repo)
				continue
			}
			fmt.Fprintf(w, "%s\t%s\t%s\n", m.Repo, describeModel(dir), origin)
		}
		return w.Flush()
	case "pull":
		fs := newFlagSet(env, "models pull", "models pull NAME [--revision R] [--format safetensors|onnx]")
		revision := fs.String("revision", "main", "branch, tag or commit to download")
		formatFlag := fs.String("format", "", "layout to download: safetensors (the diffusers layout, the default when the repository has it) or onnx")
		if err := parseFlags(fs, env, args[1:]); err != nil {
			return err
		}
		if fs.NArg() > 1 {
			return fmt.Errorf("models pull: one model, not %d (%s)", fs.NArg(), strings.Join(fs.Args(), " "))
		}
		name := fs.Arg(0)
		if name == "" {
			return errors.New("models pull: name a model, for example: diffute models pull stabilityai/sdxl-turbo")
		}
		format, err := hub.ParseFormat(*formatFlag)
		if err != nil {
			return fmt.Errorf("models pull: --format: %w", err)
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
		dir, err := src.hub.Pull(ctx, name, hub.PullOptions{Revision: *revision, Format: format})
		if err != nil {
			return err
		}
		fmt.Fprintln(env.stdout, dir)
		return nil
	case "make-random":
		return runMakeRandom(env, args[1:])
	case "make-tiny":
		fs := newFlagSet(env, "models make-tiny", "models make-tiny [--dir DIR]")
		dir := fs.String("dir", src.tinyDir, "where to write the tiny models (one folder per name)")
		if err := parseFlagsNoArgs(fs, env, args[1:]); err != nil {
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
		return unknownSubcommand(env, "models", args[0], summary, "list", "pull", "make-tiny", "make-random")
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
