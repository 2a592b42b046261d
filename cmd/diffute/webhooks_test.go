package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestParseCIDRs(t *testing.T) {
	t.Parallel()
	got, err := parseCIDRs(" 10.1.2.3/16, fd12::1/64 ,")
	if err != nil || len(got) != 2 || got[0].String() != "10.1.0.0/16" || got[1].String() != "fd12::/64" {
		t.Errorf("parseCIDRs = %v, %v", got, err)
	}
	if _, err := parseCIDRs("10.1.0.0"); err == nil || !strings.Contains(err.Error(), "--webhook-allow-cidr") {
		t.Errorf("a bare address: %v, want an error naming the flag", err)
	}
}

func TestWebhooksSecretCLIErrors(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"webhooks", "secret", "--data-dir", t.TempDir(), "--org", "acme"},
		{"webhooks", "secret", "--data-dir", t.TempDir(), "--org", "a/b", "--project", "p"},
	} {
		var out, errOut bytes.Buffer
		err := run(context.Background(), args, func(string) string { return "" }, &out, &errOut)
		if err == nil || !strings.Contains(err.Error(), "--org and --project are required") || out.Len() != 0 {
			t.Errorf("%v: %v (stdout %q)", args, err, out.String())
		}
	}
	var out, errOut bytes.Buffer
	if err := run(context.Background(), []string{"webhooks"}, func(string) string { return "" }, &out, &errOut); err == nil ||
		!strings.Contains(errOut.String(), "webhooks secret") {
		t.Errorf("no subcommand: %v, usage %q", err, errOut.String())
	}
}
