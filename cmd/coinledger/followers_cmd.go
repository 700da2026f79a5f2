package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"text/tabwriter"

	"github.com/coinledger/coinledger/projections"
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

// followersList prints the followers in the server's /api/v1/status.
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
	fmt.Fprintln(w, "FOLLOWER\tSTATE\tPOSITION\tLAG\tSKIPPABLE\tPARKED AT\tERROR")
	for _, f := range st.Projections {
		if f.Kind != projections.KindFollower {
			continue
		}
		parked := "-"
		if f.ParkedAt > 0 {
			parked = strconv.FormatUint(f.ParkedAt, 10)
		}
		skippable := "no"
		if f.Skippable {
			skippable = "yes"
		}
		fmt.Fprintf(w, "%s\t%s\t%d\t%d\t%s\t%s\t%s\n", f.Name, f.State, f.Position, f.Lag, skippable, parked, f.Error)
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
	var skipped struct {
		Position uint64 `json:"skipped_position"`
	}
	err = rf.client("", "").call(ctx, http.MethodPost, "/followers/"+url.PathEscape(name)+"/"+action, nil, &skipped)
	var pe *problemError
	switch {
	case err == nil:
	case errors.As(err, &pe) && pe.Status == http.StatusNotFound:
		return fmt.Errorf("followers %s: the server has no follower %q (see coinledger followers list): %w", action, name, err)
	case errors.As(err, &pe) && pe.Code == "follower_not_skippable":
		return fmt.Errorf("followers skip: %s is not a side-effecting follower, whose events are never skipped "+
			"(fix the cause, then coinledger followers retry %s): %w", name, name, err)
	case errors.As(err, &pe) && pe.Status == http.StatusConflict:
		return fmt.Errorf("followers %s: %s is not parked: %w", action, name, err)
	default:
		return fmt.Errorf("followers %s %s: %w", action, name, err)
	}
	if action == "skip" {
		fmt.Printf("follower %s: the event at position %d is skipped (recorded in the log) and it resumes; see coinledger followers list\n",
			name, skipped.Position)
		return nil
	}
	fmt.Printf("follower %s: retry requested: it handles the failed event again; see coinledger followers list\n", name)
	return nil
}
