package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/diffute/diffute"
	"github.com/diffute/diffute/webhook"
)

// runWebhooks is "diffute webhooks secret": it prints a project's webhook
// signing secret (creating it on first use) as the last line of stdout, so
// scripts can take it with tail -n1.
func runWebhooks(ctx context.Context, env *environment, args []string) error {
	const summary = "webhooks secret --org O --project P [--rotate]"
	if err := subcommandUsage(env, args, summary); err != nil {
		return err
	}
	if args[0] != "secret" {
		return unknownSubcommand(env, "webhooks", args[0], summary, "secret")
	}
	fs := newFlagSet(env, "webhooks secret", summary)
	var state stateFlags
	state.register(fs, env)
	org := fs.String("org", "", "organization of the project")
	project := fs.String("project", "", "project whose signing secret to print")
	rotate := fs.Bool("rotate", false, "make a new secret; the old one keeps signing for 24h")
	var tenancy tenancyFlags // the secret key, which seals the signing secrets
	registerTenancyFlags(fs, env, &tenancy, "secret-key", "secret-key-file")
	if err := parseFlags(fs, env, args[1:]); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("webhooks secret: unexpected argument %q", fs.Arg(0))
	}
	if !diffute.ValidPromptName(*org, 64) || !diffute.ValidPromptName(*project, 64) {
		return errors.New("webhooks secret: --org and --project are required: 1-64 characters of A-Z, a-z, 0-9, '_' or '-'")
	}
	o, err := openState(ctx, env, openSpec{state: &state, secrets: &tenancy})
	if err != nil {
		return err
	}
	defer o.close()
	db := o.db
	var secrets []diffute.WebhookSecret
	if *rotate {
		secrets, err = db.Store().RotateWebhookSecret(ctx, *org, *project, webhook.SignatureOverlap)
	} else {
		secrets, err = db.Store().WebhookSecrets(ctx, *org, *project)
	}
	if err != nil {
		return fmt.Errorf("webhooks secret: %w", err)
	}
	for _, s := range secrets[1:] {
		fmt.Fprintf(env.stdout, "previous secret, signing until %s:\n%s\n", s.ExpiresAt.Format("2006-01-02T15:04:05Z"), s.Secret)
	}
	fmt.Fprintf(env.stdout, "webhook signing secret of %s/%s (verify webhook-signature with it):\n%s\n", *org, *project, secrets[0].Secret)
	return nil
}
