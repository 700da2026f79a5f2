package main

import (
	"os"
	"testing"
	"time"
)

// TestProcCPUTimeOfThisProcess: the /proc CPU time of this process grows
// with the work it does.
func TestProcCPUTimeOfThisProcess(t *testing.T) {
	before, err := procCPUTime(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	x := 0
	for start := time.Now(); time.Since(start) < 100*time.Millisecond; {
		x++
	}
	after, err := procCPUTime(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if after <= before {
		t.Errorf("CPU time %v then %v after spinning (%d loops)", before, after, x)
	}
	if clockTicks() == 0 {
		t.Error("no clock tick rate")
	}
}
