package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/diffute/diffute"
)

func runKeys(ctx context.Context, env *environment, args []string) error {
	const summary = "keys create --org O [--project P] [--name N] | list [--org O] | revoke ID"
	if err := subcommandUsage(env, args, summary); err != nil {
		return err
	}
	sub, rest := args[0], args[1:]
	if sub != "create" && sub != "list" && sub != "revoke" {
		return unknownSubcommand(env, "keys", sub, summary, "create", "list", "revoke")
	}
	fs := newFlagSet(env, "keys "+sub, map[string]string{
		"create": "keys create --org O [--project P] [--name N]",
		"list":   "keys list [--org O]",
		"revoke": "keys revoke ID",
	}[sub])
	var state stateFlags
	state.register(fs, env)
	org := fs.String("org", "", "organization the key belongs to")
	project := fs.String("project", "", "project the key is limited to (default: every project of the organization)")
	name := fs.String("name", "", "a label for the key")
	if err := parseFlags(fs, env, rest); err != nil {
		return err
	}
	var id string
	if sub == "revoke" && fs.NArg() > 0 {
		id = fs.Arg(0)
	}
	if n := fs.NArg(); (sub == "revoke" && n > 1) || (sub != "revoke" && n > 0) {
		return fmt.Errorf("keys %s: unexpected argument %q", sub, fs.Arg(n-1))
	}
	o, err := openState(ctx, env, openSpec{state: &state})
	if err != nil {
		return err
	}
	defer o.close()
	keys := o.db.Store()

	switch sub {
	case "create":
		if !diffute.ValidPromptName(*org, 64) {
			return errors.New("keys create: --org is required: 1-64 characters of A-Z, a-z, 0-9, '_' or '-'")
		}
		if *org == "media" {
			return errors.New("keys create: --org media is reserved (media URLs live under /media/); choose another name")
		}
		if *project != "" && !diffute.ValidPromptName(*project, 64) {
			return errors.New("keys create: --project must be 1-64 characters of A-Z, a-z, 0-9, '_' or '-'")
		}
		secret, hash := diffute.NewAPIKeySecret()
		k := &diffute.APIKey{Org: *org, Project: *project, Name: *name, CreatedAt: time.Now().UTC()}
		if err := keys.CreateAPIKey(ctx, k, hash); err != nil {
			return fmt.Errorf("keys create: %w", err)
		}
		scope := *org + "/*"
		if *project != "" {
			scope = *org + "/" + *project
		}
		fmt.Fprintf(env.stdout, "created key %d for %s; it is shown once, store it now:\n%s\n", k.ID, scope, secret)
		return nil
	case "list":
		list, err := keys.ListAPIKeys(ctx, *org)
		if err != nil {
			return fmt.Errorf("keys list: %w", err)
		}
		fmt.Fprintf(env.stdout, "%-6s %-20s %-20s %-20s %-20s %s\n", "ID", "ORG", "PROJECT", "NAME", "CREATED", "STATE")
		for _, k := range list {
			project, state := k.Project, "active"
			if project == "" {
				project = "*"
			}
			if !k.RevokedAt.IsZero() {
				state = "revoked " + k.RevokedAt.Format(time.RFC3339)
			}
			fmt.Fprintf(env.stdout, "%-6d %-20s %-20s %-20s %-20s %s\n", k.ID, k.Org, project, k.Name, k.CreatedAt.Format(time.RFC3339), state)
		}
		return nil
	case "revoke":
		n, err := strconv.ParseInt(id, 10, 64)
		if err != nil {
			return errors.New("keys revoke: name the key's ID, as shown by 'diffute keys list'")
		}
		if err := keys.RevokeAPIKey(ctx, n); err != nil {
			return fmt.Errorf("keys revoke: %w", err)
		}
		fmt.Fprintf(env.stdout, "revoked key %d\n", n)
		return nil
	default:
		return unknownSubcommand(env, "keys", sub, summary, "create", "list", "revoke")
	}
}
