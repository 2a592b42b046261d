package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
)

// TestConfigurationDocIsCurrent keeps docs/configuration.md in step with serve's
// flags. To refresh it: go run ./cmd/diffute config-doc > docs/configuration.md
func TestConfigurationDocIsCurrent(t *testing.T) {
	t.Parallel()
	want, err := os.ReadFile("../../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := run(context.Background(), []string{"config-doc"}, func(string) string { return "" }, &out, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	if out.String() != string(want) {
		t.Errorf("docs/configuration.md is out of date with serve's flags; run:\n  go run ./cmd/diffute config-doc > docs/configuration.md")
	}
	// Every flag of serve is documented, with its environment variable.
	_, fs := serveFlags(&environment{getenv: func(string) string { return "" }, stdout: &out, stderr: &out})
	for _, name := range []string{"addr", "data-dir", "workers", "webhook-timeout", "device"} {
		if f := fs.Lookup(name); f == nil || !strings.Contains(string(want), "`--"+name) || !strings.Contains(string(want), envName(name)) {
			t.Errorf("flag %s missing from the doc", name)
		}
	}
	if strings.Contains(string(want), "## Other") {
		t.Errorf("some flags fall in no group (## Other): add them to serveFlagGroups")
	}
}

// TestServeHelpGroupsFlags checks that serve --help lists flags under headings.
func TestServeHelpGroupsFlags(t *testing.T) {
	t.Parallel()
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"serve", "--help"}, func(string) string { return "" }, &stdout, &stderr)
	if err != nil {
		t.Fatalf("serve --help: %v", err)
	}
	help := stdout.String()
	last := -1
	for _, heading := range []string{"\nServer:\n", "\nStorage:\n", "\nWorkers and engine:\n", "\nWebhooks:\n"} {
		i := strings.Index(help, heading)
		if i < 0 || i < last {
			t.Fatalf("help lacks %q in order:\n%s", heading, help)
		}
		last = i
	}
	if i, j := strings.Index(help, "\nWebhooks:\n"), strings.Index(help, "--webhook-timeout"); j < i {
		t.Errorf("--webhook-timeout is not under Webhooks:\n%s", help)
	}
}
