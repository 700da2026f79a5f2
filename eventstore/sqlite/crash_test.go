package sqlite_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/coinledger/coinledger/eventstore"
	"github.com/coinledger/coinledger/eventstore/sqlite"
	"github.com/coinledger/coinledger/eventstore/storetest"
)

const crashChildEnv = "COINLEDGER_CRASH_CHILD_DB"

func TestMain(m *testing.M) {
	if path := os.Getenv(crashChildEnv); path != "" {
		crashChild(path)
		return
	}
	os.Exit(m.Run())
}

// crashChild appends from 16 goroutines until killed, printing one line per
// acknowledged append: "ack <stream> <revision> <event id>".
func crashChild(path string) {
	s, err := sqlite.Open(context.Background(), path, sqlite.Options{})
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(1)
	}
	var mu sync.Mutex
	out := bufio.NewWriter(os.Stdout)
	var wg sync.WaitGroup
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stream := fmt.Sprintf("crash-%d", w)
			for i := 0; ; i++ {
				events := storetest.Events("t.crash", i*3, 3)
				for j := range events {
					events[j].Metadata.IdempotencyKey = fmt.Sprintf("%d/%d", os.Getpid(), i)
				}
				prepared, _ := eventstore.Prepare(stream, events, 0)
				if _, err := s.Append(context.Background(), stream, eventstore.Any, prepared...); err != nil {
					fmt.Fprintln(os.Stderr, "append:", err)
					os.Exit(1)
				}
				mu.Lock()
				for _, e := range prepared {
					fmt.Fprintf(out, "ack %s %s\n", stream, e.ID)
				}
				out.Flush()
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
}

// TestCrashLosesNoAcknowledgedAppend kills a writer process with SIGKILL in
// the middle of a load, reopens the file and checks that every append the
// process acknowledged is there and every hash chain verifies.
func TestCrashLosesNoAcknowledgedAppend(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.db")
	for round := 0; round < 3; round++ {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+path)
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		acked := map[string]string{} // event id -> stream
		sc := bufio.NewScanner(stdout)
		for sc.Scan() && len(acked) < 3000 {
			f := strings.Fields(sc.Text())
			if len(f) != 3 || f[0] != "ack" {
				t.Fatalf("child said %q", sc.Text())
			}
			acked[f[2]] = f[1]
		}
		cmd.Process.Signal(syscall.SIGKILL)
		for sc.Scan() { // acknowledgements printed before the kill landed count too
			if f := strings.Fields(sc.Text()); len(f) == 3 {
				acked[f[2]] = f[1]
			}
		}
		cmd.Wait()
		if len(acked) < 3000 {
			t.Fatalf("round %d: child acknowledged only %d events", round, len(acked))
		}

		s, err := sqlite.Open(context.Background(), path, sqlite.Options{})
		if err != nil {
			t.Fatalf("reopen after kill: %v", err)
		}
		stored, streams := readVerified(t, s)
		for id, stream := range acked {
			if stored[id] != stream {
				t.Fatalf("round %d: acknowledged event %s of %s lost", round, id, stream)
			}
		}
		t.Logf("round %d: %d acknowledged, %d stored, chains of %d streams verify", round, len(acked), len(stored), streams)
		s.Close()
	}
}

// readVerified reads the whole log of s, checks that positions have no gap
// and that every stream's hash chain verifies, and returns the stream of
// every event by id, and the number of streams.
func readVerified(tb testing.TB, s eventstore.Store) (stored map[string]string, streams int) {
	tb.Helper()
	v := eventstore.NewVerifier()
	stored = map[string]string{}
	var after uint64
	for {
		events, err := s.ReadAll(context.Background(), after, 4096)
		if err != nil {
			tb.Fatal(err)
		}
		if len(events) == 0 {
			return stored, v.Streams()
		}
		for _, e := range events {
			if e.Position != after+1 {
				tb.Fatalf("gap in global order: %d after %d", e.Position, after)
			}
			after = e.Position
			if err := v.Verify(e); err != nil {
				tb.Fatal(err)
			}
			stored[e.ID.String()] = e.Stream
		}
	}
}
