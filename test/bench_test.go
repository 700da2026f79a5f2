package test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/coinledger/coinledger/projections/dbtest"
)

// benchLine is the JSON last line of a bench run.
type benchLine struct {
	Scenario          string             `json:"scenario"`
	OpsPerSec         float64            `json:"ops_per_sec"`
	P99ms             float64            `json:"p99_ms"`
	BaselineOpsPerSec float64            `json:"baseline_ops_per_sec"`
	Ratio             float64            `json:"ratio"`
	ServerCPUusPerOp  float64            `json:"server_cpu_us_per_op"`
	Extra             map[string]float64 `json:"extra"`
}

// lastBenchLine decodes the last line of a bench's output.
func lastBenchLine(t *testing.T, out string) benchLine {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var r benchLine
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &r); err != nil {
		t.Fatalf("last line is not the JSON result: %v\n%s", err, out)
	}
	return r
}

// TestBenchTransfersServerProcess: bench transfers runs `serve` (and the
// per-request-commit baseline) as processes of their own, drives them over
// HTTP and reports the server's CPU time per transfer on every line and in
// the JSON last line, with the ratio to the baseline. Tiny load, no timing
// asserted.
func TestBenchTransfersServerProcess(t *testing.T) {
	out := cli(t, "", nil, "bench", "transfers", "-total", "200", "-baseline-total", "40", "-clients", "4")
	r := lastBenchLine(t, out)
	if r.Scenario != "transfers" || r.OpsPerSec <= 0 || r.P99ms <= 0 || r.BaselineOpsPerSec <= 0 || r.Ratio <= 0 {
		t.Errorf("result %+v lacks a figure\n%s", r, out)
	}
	if r.ServerCPUusPerOp <= 0 || r.Extra["baseline_server_cpu_us_per_op"] <= 0 {
		t.Errorf("result %+v: no server CPU per transfer\n%s", r, out)
	}
	if n := strings.Count(out, "server_cpu_us_per_op "); n != 2 {
		t.Errorf("%d bench lines show server_cpu_us_per_op, want 2\n%s", n, out)
	}
}

// TestBenchAgainstOtherBinary: -against runs the scenario alternately on
// this binary's server and the other binary's `serve` (here the same
// build), prints every round and the medians, and puts the other build as
// the baseline of the JSON line.
func TestBenchAgainstOtherBinary(t *testing.T) {
	out := cli(t, "", nil, "bench", "transfers", "-against", binary, "-rounds", "2", "-total", "40", "-clients", "4")
	for _, want := range []string{"round 1 this", "round 1 other", "round 2 this", "round 2 other", "this/other:"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q\n%s", want, out)
		}
	}
	r := lastBenchLine(t, out)
	if r.BaselineOpsPerSec <= 0 || r.Ratio <= 0 || r.ServerCPUusPerOp <= 0 || r.Extra["other_server_cpu_us_per_op"] <= 0 {
		t.Errorf("result %+v lacks a figure\n%s", r, out)
	}
}

// TestBenchReadsOpenLoop: bench reads against a server process, offered
// open-loop at a constant rate, reports the achieved rate and the server's
// CPU time per read.
func TestBenchReadsOpenLoop(t *testing.T) {
	out := cli(t, "", nil, "bench", "reads", "-rate", "200", "-total", "100", "-clients", "4")
	r := lastBenchLine(t, out)
	if r.Scenario != "reads" || r.OpsPerSec <= 0 || r.ServerCPUusPerOp <= 0 || r.Extra["offered_ops_per_sec"] != 200 {
		t.Errorf("result %+v lacks a figure\n%s", r, out)
	}
}

// TestBenchTransfersInstancesOnPostgres: bench transfers -store postgres
// -instances 3 runs one server, then three sharing the event store and
// read models on the test Postgres, spreads the clients over them, and
// reports both runs (the servers' CPU per transfer, summed) with the one
// instance as the JSON line's baseline. Tiny load, no timing asserted.
func TestBenchTransfersInstancesOnPostgres(t *testing.T) {
	out := cli(t, "", nil, "bench", "transfers", "-store", "postgres", "-postgres", dbtest.PostgresURL(t),
		"-instances", "3", "-total", "120", "-clients", "6")
	r := lastBenchLine(t, out)
	if r.Scenario != "transfers_postgres" || r.OpsPerSec <= 0 || r.P99ms <= 0 || r.BaselineOpsPerSec <= 0 || r.Ratio <= 0 ||
		r.ServerCPUusPerOp <= 0 || r.Extra["baseline_server_cpu_us_per_op"] <= 0 || r.Extra["instances"] != 3 {
		t.Errorf("result %+v lacks a figure\n%s", r, out)
	}
	for _, want := range []string{"1 instance ", "3 instances, round robin"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q\n%s", want, out)
		}
	}
}
