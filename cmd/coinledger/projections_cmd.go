package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"sync/atomic"
	"text/tabwriter"
	"time"
)

const projectionsUsage = `usage: coinledger projections <command>

  status [-config FILE]  checkpoint, head and lag of every read model, from the stores; through
                         the running server's admin API when it holds the embedded store
  list                   the running server's projections: version, state, position, lag
  rebuild NAME...        rebuild read models on the running server (blue/green: the live one
                         serves until the new one has caught up), one after the other, with
                         progress until each job is done
  rebuild -all           rebuild every projection the server lists
  retry NAME             resume a parked read model on the running server

Every command takes -url URL and -token TOKEN.
` + remoteUsage

// projectionsCmd runs the projections subcommands.
func projectionsCmd(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return usageError("projections: no command given\n\n" + projectionsUsage)
	}
	switch args[0] {
	case "status":
		return projectionsStatus(ctx, args[1:])
	case "list":
		return projectionsList(ctx, args[1:])
	case "rebuild":
		return projectionsRebuild(ctx, args[1:])
	case "retry":
		return projectionsRetry(ctx, args[1:])
	case "help", "-h", "--help":
		os.Stdout.WriteString(projectionsUsage)
		return nil
	}
	return usageError(fmt.Sprintf("projections: unknown command %q\n\n%s", args[0], projectionsUsage))
}

// projectionsRetry asks the running server to retry a parked read model
// (POST /api/v1/projections/{name}/retry, admin).
func projectionsRetry(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("projections retry", flag.ContinueOnError)
	rf := addRemoteFlags(fs)
	pos, err := parseFlags(fs, projectionsUsage, args, 1)
	if err != nil {
		return err
	}
	name := pos[0]
	if err := rf.client("", "").call(ctx, http.MethodPost, "/projections/"+url.PathEscape(name)+"/retry", nil, nil); err != nil {
		return fmt.Errorf("projections retry %s: %w", name, err)
	}
	fmt.Printf("projection %s: retry requested; see coinledger projections status or /api/v1/status\n", name)
	return nil
}

// projectionInfo is a projection as GET /api/v1/projections lists it.
type projectionInfo struct {
	Name       string `json:"name"`
	Version    int    `json:"version"`
	State      string `json:"state"`
	Position   uint64 `json:"position"`
	Lag        uint64 `json:"lag"`
	RebuildJob string `json:"rebuild_job"` // the id of the rebuild in progress, if any
}

// listProjections asks the server for its projections.
func listProjections(ctx context.Context, r *remote) ([]projectionInfo, error) {
	var list struct {
		Projections []projectionInfo `json:"projections"`
	}
	if err := r.call(ctx, http.MethodGet, "/projections", nil, &list); err != nil {
		return nil, err
	}
	return list.Projections, nil
}

// projectionsList prints the running server's projections.
func projectionsList(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("projections list", flag.ContinueOnError)
	rf := addRemoteFlags(fs)
	if _, err := parseFlags(fs, projectionsUsage, args, 0); err != nil {
		return err
	}
	ps, err := listProjections(ctx, rf.client("", ""))
	if err != nil {
		return fmt.Errorf("projections list: %w", err)
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "PROJECTION\tVERSION\tSTATE\tPOSITION\tLAG")
	for _, p := range ps {
		fmt.Fprintf(w, "%s\t%d\t%s\t%d\t%d\n", p.Name, p.Version, p.State, p.Position, p.Lag)
	}
	return w.Flush()
}

// rebuildJob is a rebuild as the server reports it
// (GET /api/v1/projections/jobs/{id}).
type rebuildJob struct {
	ID              string     `json:"id"`
	Projection      string     `json:"projection"`
	State           string     `json:"state"` // running, done, failed
	Position        uint64     `json:"position"`
	Head            uint64     `json:"head"`
	Events          uint64     `json:"events"` // events applied so far
	EventsPerSecond float64    `json:"events_per_second"`
	StartedAt       time.Time  `json:"started_at"`
	FinishedAt      *time.Time `json:"finished_at"`
	Error           string     `json:"error"`
}

// Job states.
const (
	jobRunning = "running"
	jobDone    = "done"
	jobFailed  = "failed"
)

// jobPollEvery is how often a rebuild's job is read.
var jobPollEvery = 500 * time.Millisecond

// projectionsRebuild rebuilds read models on the running server, one after
// the other, and follows each job to its end.
func projectionsRebuild(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("projections rebuild", flag.ContinueOnError)
	all := fs.Bool("all", false, "rebuild every projection the server lists")
	rf := addRemoteFlags(fs)
	names, err := parseFlags(fs, projectionsUsage, args, -1)
	if err != nil {
		return err
	}
	if *all == (len(names) > 0) {
		return usageError("projections rebuild: name the read models to rebuild, or give -all\n\n" + projectionsUsage)
	}
	r := rf.client("", "")
	if *all {
		ps, err := listProjections(ctx, r)
		if err != nil {
			return fmt.Errorf("projections rebuild: %w", err)
		}
		for _, p := range ps {
			names = append(names, p.Name)
		}
	}
	for _, name := range names {
		job, err := rebuild(ctx, r, name)
		if err != nil {
			return fmt.Errorf("projections rebuild %s: %w", name, err)
		}
		took := "-"
		if job.FinishedAt != nil {
			took = job.FinishedAt.Sub(job.StartedAt).Round(time.Millisecond).String()
		}
		fmt.Printf("projection %s rebuilt up to position %d in %s (%.0f events/s)\n",
			name, job.Position, took, job.EventsPerSecond)
	}
	return nil
}

// rebuild starts a rebuild of name, or joins the one in progress, and
// polls its job, showing progress, until it is done (the job) or failed
// (an error with the job's).
func rebuild(ctx context.Context, r *remote, name string) (rebuildJob, error) {
	var job rebuildJob
	err := r.call(ctx, http.MethodPost, "/projections/"+url.PathEscape(name)+"/rebuild", nil, &job)
	var pe *problemError
	if errors.As(err, &pe) && pe.Code == "projection_rebuilding" {
		if job.ID, err = runningRebuild(ctx, r, name); err == nil {
			fmt.Fprintf(os.Stderr, "projection %s is already being rebuilt: following job %s\n", name, job.ID)
			job.State = jobRunning
		}
	}
	if err != nil {
		return job, err
	}
	if job.ID == "" {
		return job, errors.New("the server's answer names no job")
	}
	var latest atomic.Pointer[rebuildJob]
	latest.Store(&job)
	stop := startProgress("rebuild "+name, func() progressSample {
		j := latest.Load()
		s := progressSample{Events: j.Events, Position: j.Position, Rate: j.EventsPerSecond}
		if j.Head > 0 {
			s.Fraction = float64(j.Position) / float64(j.Head)
		}
		return s
	})
	defer stop()
	path := "/projections/jobs/" + url.PathEscape(job.ID)
	t := time.NewTicker(jobPollEvery)
	defer t.Stop()
	for job.State == jobRunning {
		select {
		case <-ctx.Done():
			return job, fmt.Errorf("stopped following job %s, which goes on on the server (GET /api/v1%s): %w", job.ID, path, ctx.Err())
		case <-t.C:
		}
		var next rebuildJob
		if err := r.call(ctx, http.MethodGet, path, nil, &next); err != nil {
			return job, fmt.Errorf("job %s: %w", job.ID, err)
		}
		job = next
		latest.Store(&next)
	}
	switch job.State {
	case jobDone:
		return job, nil
	case jobFailed:
		return job, fmt.Errorf("job %s failed at position %d: %s", job.ID, job.Position, job.Error)
	}
	return job, fmt.Errorf("job %s: unknown state %q", job.ID, job.State)
}

// runningRebuild is the id of the job rebuilding name on the server.
func runningRebuild(ctx context.Context, r *remote, name string) (string, error) {
	ps, err := listProjections(ctx, r)
	if err != nil {
		return "", err
	}
	for _, p := range ps {
		if p.Name == name && p.RebuildJob != "" {
			return p.RebuildJob, nil
		}
	}
	return "", fmt.Errorf("the server says %s is being rebuilt but lists no job for it", name)
}
