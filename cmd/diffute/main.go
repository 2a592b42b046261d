// Command diffute is the Diffute text-to-image service: the API server with its
// embedded queue and workers (serve), API keys (keys), models (models), a one-off
// image (generate) and an offline demo of the whole contract (demo).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	if errors.Is(err, errUsage) {
		os.Exit(2)
	}
	if errors.Is(err, errInterrupted) {
		os.Exit(130) // the shell's code for a command ended by SIGINT
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "diffute:", err)
		os.Exit(1)
	}
}

// errUsage marks an error whose message (usage) was already printed.
var errUsage = errors.New("usage")

// errHelp marks a request for help whose usage was printed; run returns nil for it.
var errHelp = errors.New("help")

// errInterrupted marks a command that stopped on Ctrl-C after saying how to go on;
// main exits 130 for it.
var errInterrupted = errors.New("interrupted")

const usage = `Diffute: a self-hostable text-to-image inference service.

Usage:
  diffute serve    [flags]               run the API server with its queue and workers
  diffute worker   --database-url postgres://…   a GPU worker for a scale-out deployment
  diffute keys     create|list|revoke    manage API keys
  diffute webhooks secret --org O --project P   print a project's webhook signing secret
  diffute models   list|pull|make-tiny   manage models (Hugging Face cache, tiny test models)
  diffute generate --model M --prompt P --out FILE   generate one image
  diffute tokenize --model M [--json] PROMPT…   show the token ids each tokenizer gives
  diffute schedule --model M --steps N [--scheduler S] [--json]   print a schedule's timesteps and sigmas
  diffute demo                           run the product page's example offline on a tiny model
  diffute submit   FILE.json --url URL --key KEY [--wait] [--download DIR]
                                         send a request to a server and follow it
  diffute jobs     list|get|watch|cancel|download   a running server's jobs (--url, --key)
  diffute doctor   [--ort-lib PATH]      check ONNX Runtime, the CUDA provider, CUDA libraries and GPUs
  diffute bench    --model DIR [--device cuda:0] [--steps N]   time one generation (JSON line)
  diffute version

Run 'diffute COMMAND -h' for a command's flags. Flags may come before or after
arguments; "--" ends them, and "-" names stdin where a file is read. Every flag can
also be set as a DIFFUTE_<FLAG> environment variable (for example --data-dir as
DIFFUTE_DATA_DIR).
`

// commands are the names run knows, for "did you mean".
var commands = []string{"serve", "worker", "keys", "webhooks", "models", "generate", "tokenize", "schedule",
	"demo", "submit", "jobs", "doctor", "bench", "version", "help"}

// run is the whole program; main only adds the process's signals, environment and
// exit code, so tests run the real program in-process.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errUsage
	}
	env := &environment{getenv: getenv, stdout: stdout, stderr: stderr}
	err := dispatch(ctx, env, args[0], args[1:])
	if errors.Is(err, errHelp) {
		return nil
	}
	return err
}

func dispatch(ctx context.Context, env *environment, cmd string, rest []string) error {
	switch cmd {
	case "serve":
		return runServe(ctx, env, rest)
	case "worker":
		return runWorker(ctx, env, rest)
	case "keys":
		return runKeys(ctx, env, rest)
	case "webhooks":
		return runWebhooks(ctx, env, rest)
	case "models":
		return runModels(ctx, env, rest)
	case "generate":
		return runGenerate(ctx, env, rest)
	case "tokenize":
		return runTokenize(ctx, env, rest)
	case "schedule":
		return runSchedule(ctx, env, rest)
	case "demo":
		return runDemo(ctx, env, rest)
	case "submit":
		return runSubmit(ctx, env, rest)
	case "jobs":
		return runJobs(ctx, env, rest)
	case "doctor":
		return runDoctor(ctx, env, rest)
	case "bench":
		return runBench(ctx, env, rest)
	case "config-doc": // hidden: regenerates docs/configuration.md
		return runConfigDoc(env, rest)
	case "version", "--version":
		return runVersion(env, rest)
	case "help", "-h", "-help", "--help":
		if len(rest) > 0 && rest[0] != "help" && !isHelp(rest[0]) {
			return dispatch(ctx, env, rest[0], []string{"--help"}) // diffute help COMMAND
		}
		fmt.Fprint(env.stdout, usage)
		return errHelp
	default:
		fmt.Fprintf(env.stderr, "diffute: unknown command %q%s\n\n%s", cmd, didYouMean(cmd, commands), usage)
		return errUsage
	}
}

// version is set at build time with -ldflags "-X main.version=…"; without it the
// module version from the build info is used.
var version = "dev"

// runVersion prints the version, the VCS commit the binary was built from and the
// Go version, from runtime/debug.ReadBuildInfo.
func runVersion(env *environment, args []string) error {
	fs := newFlagSet(env, "version", "version")
	if err := parseFlagsNoArgs(fs, env, args); err != nil {
		return err
	}
	fmt.Fprintln(env.stdout, versionLine())
	return nil
}

func versionLine() string {
	v, commit, modified, goVersion := buildVersion()
	if commit == "" {
		commit = "unknown"
	}
	if modified {
		commit += " (modified)"
	}
	return fmt.Sprintf("diffute %s commit %s %s", v, commit, goVersion)
}

// environment is what a command may touch of the process.
type environment struct {
	getenv         func(string) string
	stdout, stderr io.Writer
}
