package main

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/diffute/diffute/httpapi"
)

const jobsSummary = "jobs list [--limit N] [--before ID] | get ID | watch ID [--download DIR] | cancel ID | download ID [--out DIR]   (each with --url URL --key KEY [--org O --project P])"

var jobsSubcommands = []string{"list", "get", "watch", "cancel", "download"}

// runJobs is "diffute jobs": a running server's jobs of one project, through the
// same API and flags as submit.
func runJobs(ctx context.Context, env *environment, args []string) error {
	if err := subcommandUsage(env, args, jobsSummary); err != nil {
		return err
	}
	sub, rest := args[0], args[1:]
	name := "jobs " + sub
	switch sub {
	case "list":
		return cmdError(name, jobsList(ctx, env, rest))
	case "get", "watch", "cancel", "download":
		return cmdError(name, jobsOne(ctx, env, sub, rest))
	default:
		return unknownSubcommand(env, "jobs", sub, jobsSummary, jobsSubcommands...)
	}
}

func jobsList(ctx context.Context, env *environment, args []string) error {
	fs := newFlagSet(env, "jobs list", "jobs list [--limit N] [--before ID] [--json] --url URL --key KEY")
	var srv serverFlags
	srv.register(fs)
	limit := fs.Int("limit", 20, "jobs per page, newest first (at most 100)")
	before := fs.Int64("before", 0, "list the jobs older than this job ID (the next page's cursor)")
	asJSON := fs.Bool("json", false, "print the API's JSON instead of a table")
	if err := parseFlags(fs, env, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	c, endpoint, err := srv.client("jobs list")
	if err != nil {
		return err
	}
	q := url.Values{"limit": {strconv.Itoa(*limit)}}
	if *before > 0 {
		q.Set("before", strconv.FormatInt(*before, 10))
	}
	var list httpapi.JobList
	if err := c.do(ctx, http.MethodGet, endpoint+"?"+q.Encode(), nil, &list); err != nil {
		return err
	}
	if *asJSON {
		return printJSON(env.stdout, list)
	}
	w := tabwriter.NewWriter(env.stdout, 2, 8, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tSTATUS\tPROGRESS\tIMAGES\tMODEL\tNAME\tCREATED")
	for _, j := range list.Jobs {
		fmt.Fprintf(w, "%d\t%s\t%.0f%%\t%d\t%s\t%s\t%s\n", j.JobID, j.Status, j.Progress*100, j.Images, j.Model, j.Name, j.CreatedAt)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if list.NextBefore != nil {
		fmt.Fprintf(env.stderr, "more: diffute jobs list --before %d\n", *list.NextBefore)
	}
	return nil
}

// jobsOne runs the subcommands that name one job.
func jobsOne(ctx context.Context, env *environment, sub string, args []string) error {
	summary := "jobs " + sub + " ID --url URL --key KEY [--org O --project P]"
	fs := newFlagSet(env, "jobs "+sub, summary)
	var srv serverFlags
	srv.register(fs)
	var dir *string
	timeout := time.Hour
	switch sub {
	case "watch":
		dir = fs.String("download", "", "once the job ends, save its images in this directory")
		fs.DurationVar(&timeout, "timeout", time.Hour, "give up after this long")
	case "download":
		dir = fs.String("out", "", "directory to save the images in (default: job-ID)")
	}
	if err := parseFlags(fs, env, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("name one job ID, as 'diffute jobs list' shows (usage: diffute %s)", summary)
	}
	id, err := strconv.ParseInt(fs.Arg(0), 10, 64)
	if err != nil || id <= 0 {
		return fmt.Errorf("job ID %q: want a number, as 'diffute jobs list' shows", fs.Arg(0))
	}
	c, endpoint, err := srv.client("jobs " + sub)
	if err != nil {
		return err
	}
	jobURL := fmt.Sprintf("%s/%d", endpoint, id)
	switch sub {
	case "watch":
		return watchJob(ctx, env, c, &srv, id, jobURL, timeout, *dir)
	case "cancel":
		var st httpapi.JobStatus
		if err := c.do(ctx, http.MethodDelete, jobURL, nil, &st); err != nil {
			return err
		}
		fmt.Fprintf(env.stdout, "job %d %s\n", id, st.Status)
		return nil
	}
	var st httpapi.JobStatus
	if err := c.do(ctx, http.MethodGet, jobURL, nil, &st); err != nil {
		return err
	}
	if sub == "get" {
		return printJSON(env.stdout, st)
	}
	if st.Manifest == nil || len(st.Manifest.Images) == 0 {
		if !st.Status.Terminal() {
			return fmt.Errorf("job %d is %s and has no images yet; wait with: diffute jobs watch %d --download DIR", id, st.Status, id)
		}
		return fmt.Errorf("job %d %s with no images", id, st.Status)
	}
	out := *dir
	if out == "" {
		out = fmt.Sprintf("job-%d", id)
	}
	n, err := downloadManifest(ctx, st.Manifest, out)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "saved %d images in %s\n", n, out)
	return nil
}
