package main

import (
	"bytes"
	"context"
	"errors"
	"os/exec"
	"runtime"
	"strings"
	"testing"
)

// TestHelpOnEveryCommand runs -h and --help on every command and subcommand: each
// succeeds and prints that command's own usage on stdout.
func TestHelpOnEveryCommand(t *testing.T) {
	t.Parallel()
	getenv := func(string) string { return "" }
	commands := [][]string{
		{"serve"}, {"worker"}, {"keys"}, {"keys", "create"}, {"keys", "list"}, {"keys", "revoke"},
		{"webhooks"}, {"webhooks", "secret"}, {"models"}, {"models", "list"}, {"models", "pull"},
		{"models", "make-tiny"}, {"models", "make-random"}, {"generate"}, {"tokenize"}, {"schedule"},
		{"demo"}, {"submit"}, {"jobs"}, {"jobs", "list"}, {"jobs", "get"}, {"jobs", "watch"},
		{"jobs", "cancel"}, {"jobs", "download"}, {"doctor"}, {"bench"}, {"version"},
	}
	for _, cmd := range commands {
		for _, flag := range []string{"-h", "--help"} {
			args := append(append([]string{}, cmd...), flag)
			var stdout, stderr bytes.Buffer
			err := run(context.Background(), args, getenv, &stdout, &stderr)
			want := "Usage: diffute " + strings.Join(cmd, " ")
			if err != nil || !strings.HasPrefix(stdout.String(), want) {
				t.Errorf("diffute %s: %v, stdout %q, want it to start %q (stderr %q)", strings.Join(args, " "), err, stdout.String(), want, stderr.String())
			}
		}
	}
	for _, args := range [][]string{{"help"}, {"--help"}, {"-h"}} {
		var stdout, stderr bytes.Buffer
		if err := run(context.Background(), args, getenv, &stdout, &stderr); err != nil || !strings.Contains(stdout.String(), "diffute jobs") {
			t.Errorf("diffute %s: %v %q", args[0], err, stdout.String())
		}
	}
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), []string{"help", "jobs"}, getenv, &stdout, &stderr); err != nil || !strings.HasPrefix(stdout.String(), "Usage: diffute jobs") {
		t.Errorf("diffute help jobs: %v %q", err, stdout.String())
	}
}

// TestHelpDidYouMean checks a mistyped command or subcommand names the nearest one.
func TestHelpDidYouMean(t *testing.T) {
	t.Parallel()
	getenv := func(string) string { return "" }
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"sumbit"}, `did you mean "submit"?`},
		{[]string{"job", "list"}, `did you mean "jobs"?`},
		{[]string{"keys", "crate"}, `did you mean "create"?`},
		{[]string{"models", "pul"}, `did you mean "pull"?`},
		{[]string{"jobs", "wach"}, `did you mean "watch"?`},
		{[]string{"webhooks", "secrets"}, `did you mean "secret"?`},
	}
	for _, tt := range tests {
		var stdout, stderr bytes.Buffer
		err := run(context.Background(), tt.args, getenv, &stdout, &stderr)
		if !errors.Is(err, errUsage) || !strings.Contains(stderr.String(), tt.want) {
			t.Errorf("diffute %s: %v, stderr %q, want %q", strings.Join(tt.args, " "), err, stderr.String(), tt.want)
		}
	}
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), []string{"zzzzzz"}, getenv, &stdout, &stderr); !errors.Is(err, errUsage) || strings.Contains(stderr.String(), "did you mean") {
		t.Errorf("nothing near: %v %q", err, stderr.String())
	}
}

// TestHelpFlagsAnywhere checks flags after a positional argument are parsed, not
// dropped, and that "--" ends the flags.
func TestHelpFlagsAnywhere(t *testing.T) {
	t.Parallel()
	fs := newFlagSet(&environment{getenv: func(string) string { return "" }}, "x", "x")
	a := fs.String("a", "", "")
	b := fs.Bool("b", false, "")
	env := &environment{getenv: func(string) string { return "" }, stdout: &bytes.Buffer{}, stderr: &bytes.Buffer{}}
	fs.SetOutput(env.stderr)
	if err := parseFlags(fs, env, []string{"one", "--a", "A", "-", "-b", "--", "--a", "three"}); err != nil {
		t.Fatal(err)
	}
	if *a != "A" || !*b || strings.Join(fs.Args(), " ") != "one - --a three" {
		t.Errorf("a=%q b=%v args=%q", *a, *b, fs.Args())
	}
}

// TestHelpExitCodes runs the built program: --help exits 0, a mistyped command 2.
func TestHelpExitCodes(t *testing.T) {
	t.Parallel()
	bin := buildBinary(t)
	for _, tt := range []struct {
		args []string
		code int
	}{{[]string{"--help"}, 0}, {[]string{"keys", "--help"}, 0}, {[]string{"submit", "-h"}, 0}, {[]string{"sumbit"}, 2}, {[]string{"submit", "--nope"}, 2}} {
		err := exec.Command(bin, tt.args...).Run()
		code := 0
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			code = exit.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if code != tt.code {
			t.Errorf("diffute %s exited %d, want %d", strings.Join(tt.args, " "), code, tt.code)
		}
	}
}

// TestVersion checks `diffute version` prints the VCS commit the binary was built
// from (when the build recorded one: a git worktree's .git file gives none) and the
// Go version.
func TestVersion(t *testing.T) {
	t.Parallel()
	bin := buildBinary(t)
	out, err := exec.Command(bin, "version").Output()
	if err != nil {
		t.Fatal(err)
	}
	info, err := exec.Command("go", "version", "-m", bin).Output()
	if err != nil {
		t.Fatal(err)
	}
	commit := "unknown"
	for _, line := range strings.Split(string(info), "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == "build" && strings.HasPrefix(f[1], "vcs.revision=") {
			commit = strings.TrimPrefix(f[1], "vcs.revision=")
		}
	}
	if !strings.HasPrefix(string(out), "diffute ") || !strings.Contains(string(out), " commit "+commit) || !strings.Contains(string(out), runtime.Version()) {
		t.Errorf("version printed %q, want the commit %s and %s", out, commit, runtime.Version())
	}
}

// TestHelpStrayArgument checks a positional argument a command does not take is an
// error naming it, not silently ignored.
func TestHelpStrayArgument(t *testing.T) {
	t.Parallel()
	getenv := func(string) string { return "" }
	for _, args := range [][]string{
		{"generate", "--prompt", "a", "red", "fox", "--out", "x.png"},
		{"doctor", "extra"},
		{"version", "extra"},
		{"keys", "list", "extra"},
		{"keys", "revoke", "1", "2"},
		{"models", "make-tiny", "extra"},
	} {
		var stdout, stderr bytes.Buffer
		err := run(context.Background(), args, getenv, &stdout, &stderr)
		if err == nil || !strings.Contains(err.Error(), "unexpected argument") {
			t.Errorf("diffute %s: %v, want an unexpected argument", strings.Join(args, " "), err)
		}
	}
}
