package main

import (
	"os"
	"syscall"
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
	// The tick rate converts /proc's ticks: the result agrees with the
	// kernel's own account in time units (a wrong rate would be off by its
	// factor).
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	kernel := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	if diff := (after - kernel).Abs(); diff > kernel/2+30*time.Millisecond {
		t.Errorf("/proc CPU time %v, getrusage %v (clock ticks %d/s)", after, kernel, clockTicks())
	}
}
