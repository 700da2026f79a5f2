package main

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"text/tabwriter"
)

const followersUsage = `usage: coinledger followers <command>

  list        the running server's followers (the in-memory consumers of the log: alert
              engine, outbox, indexes, schedulers): state, position, lag, the error of a
              parked one
  retry NAME  resume a parked follower: it handles the failed event again
  skip NAME   skip the event a parked side-effecting follower is stuck at (recorded as
              an event in the log), then resume it

They act on the running server's runner, through its admin API; each takes -url URL
and -token TOKEN.
` + remoteUsage

// followersCmd runs the followers subcommands.
func followersCmd(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return usageError("followers: no command given\n\n" + followersUsage)
	}
	switch args[0] {
	case "list":
		return followersList(ctx, args[1:])
	case "retry", "skip":
		return followerAct(ctx, args[0], args[1:])
	case "help", "-h", "--help":
		os.Stdout.WriteString(followersUsage)
		return nil
	}
	return usageError(fmt.Sprintf("followers: unknown command %q\n\n%s", args[0], followersUsage))
}

// followersList prints the followers of the server's /api/v1/status:
// everything its runner follows but the read models.
func followersList(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("followers list", flag.ContinueOnError)
	rf := addRemoteFlags(fs)
	if _, err := parseFlags(fs, followersUsage, args, 0); err != nil {
		return err
	}
	st, err := getStatus(ctx, rf.client("", ""))
	if err != nil {
		return fmt.Errorf("followers list: %w", err)
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "FOLLOWER\tSTATE\tPOSITION\tLAG\tPARKED AT\tERROR")
	for _, f := range st.Projections {
		if isReadModel(f.Name) {
			continue
		}
		parked := "-"
		if f.ParkedAt > 0 {
			parked = strconv.FormatUint(f.ParkedAt, 10)
		}
		fmt.Fprintf(w, "%s\t%s\t%d\t%d\t%s\t%s\n", f.Name, f.State, f.Position, f.Lag, parked, f.Error)
	}
	return w.Flush()
}

// followerAct asks the server to retry or skip (action) for a parked
// follower: POST /api/v1/followers/{name}/retry|skip, 202.
func followerAct(ctx context.Context, action string, args []string) error {
	fs := flag.NewFlagSet("followers "+action, flag.ContinueOnError)
	rf := addRemoteFlags(fs)
	pos, err := parseFlags(fs, followersUsage, args, 1)
	if err != nil {
		return err
	}
	name := pos[0]
	err = rf.client("", "").call(ctx, http.MethodPost, "/followers/"+url.PathEscape(name)+"/"+action, nil, nil)
	switch {
	case hasStatus(err, http.StatusNotFound):
		return fmt.Errorf("followers %s: the server has no follower %q (see coinledger followers list): %w", action, name, err)
	case hasStatus(err, http.StatusConflict) && action == "skip":
		return fmt.Errorf("followers skip: %s is not parked, or not a side-effecting follower (read models and indexes are never skipped): %w", name, err)
	case hasStatus(err, http.StatusConflict):
		return fmt.Errorf("followers retry: %s is not parked: %w", name, err)
	case err != nil:
		return fmt.Errorf("followers %s %s: %w", action, name, err)
	}
	done := "retry requested: it handles the failed event again"
	if action == "skip" {
		done = "the event it was parked at is skipped (recorded in the log) and it resumes"
	}
	fmt.Printf("follower %s: %s; see coinledger followers list\n", name, done)
	return nil
}
