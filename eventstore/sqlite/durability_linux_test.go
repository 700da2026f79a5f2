package sqlite_test

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/coinledger/coinledger/eventstore"
	"github.com/coinledger/coinledger/eventstore/sqlite"
)

// TestFailedFsyncStopsTheStore makes the store's fsyncs fail with EIO, as on
// a dying disk (the real system call fails: see fsyncTrap; the store runs in
// a child process), and checks the fail-stop rule:
//
//   - the append whose commit could not be fsynced fails with
//     eventstore.ErrStoreFailed, and the store reports it (eventstore.Failure);
//   - once fsyncs work again, every append, concurrent ones too, is still
//     refused with ErrStoreFailed, and nothing more is written or synced: a
//     later successful fsync proves nothing about the pages an earlier failed
//     one may have dropped ("fsyncgate");
//   - reads go on meanwhile.
//
// Then a restart (this process reopens the file) recovers from the WAL:
// every acknowledged append is there and every hash chain verifies; the
// failed append, whose outcome its caller could not know, is either wholly
// there or wholly absent, and retrying it with the same ids leaves it there
// once; new appends work.
func TestFailedFsyncStopsTheStore(t *testing.T) {
	dir, child := inChild(t, checkRestartAfterFailure)
	if !child {
		return
	}
	ctx := context.Background()
	trap := trapFsyncs(t, dir, "")
	s, err := sqlite.Open(ctx, filepath.Join(dir, "events.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var acked []eventstore.EventData
	for i := range 5 {
		events := keyed(t, "ok", fmt.Sprintf("ok-%d", i), 2, 0)
		if _, err := s.Append(ctx, "ok", eventstore.Any, events...); err != nil {
			t.Fatalf("append while fsyncs work: %v", err)
		}
		acked = append(acked, events...)
	}
	if syncs, _, err := trap.counts(); err != nil || syncs["events.db-wal"] < 5 {
		t.Fatalf("fsyncs %v for 5 appends (trap error %v): is synchronous FULL?", syncs, err)
	}
	head, err := s.Head(ctx)
	if err != nil {
		t.Fatal(err)
	}

	trap.setFail(true)
	_, err = s.Append(ctx, "doomed", eventstore.NoStream, keyed(t, "doomed", "doomed", 3, 0)...)
	if !errors.Is(err, eventstore.ErrStoreFailed) {
		t.Fatalf("append whose fsync failed: %v; want ErrStoreFailed", err)
	}
	t.Logf("append whose fsync failed: %v", err)
	if _, fails, _ := trap.counts(); fails == 0 {
		t.Fatal("the append failed, but not on a failed fsync")
	}
	if err := eventstore.Failure(s); !errors.Is(err, eventstore.ErrStoreFailed) {
		t.Fatalf("store reports failure %v after a failed fsync", err)
	}

	trap.setFail(false) // the disk answers again
	syncs, _, _ := trap.counts()
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Go(func() {
			_, errs[i] = s.Append(ctx, fmt.Sprintf("later-%d", i), eventstore.Any, keyed(t, "later", fmt.Sprint(i), 1, 0)...)
		})
	}
	wg.Wait()
	for i, err := range errs {
		if !errors.Is(err, eventstore.ErrStoreFailed) {
			t.Errorf("append %d after the failure: %v; want ErrStoreFailed", i, err)
		}
	}
	if after, _ := s.Head(ctx); after != head {
		t.Errorf("head moved from %d to %d after the failure", head, after)
	}
	if now, _, _ := trap.counts(); !maps.Equal(now, syncs) {
		t.Errorf("the failed store synced its files: fsyncs %v, then %v", syncs, now)
	}
	events, err := s.ReadAll(ctx, 0, 100)
	if err != nil || len(events) != len(acked) {
		t.Errorf("reads after the failure: %d events, %v; want %d", len(events), err, len(acked))
	}
	writeIDs(t, filepath.Join(dir, "acked"), acked)
	// Exit without Close, as a process that crashed after the failure.
}

// checkRestartAfterFailure reopens the store the child of
// TestFailedFsyncStopsTheStore left in dir.
func checkRestartAfterFailure(t *testing.T, dir string) {
	ctx := context.Background()
	s, err := sqlite.Open(ctx, filepath.Join(dir, "events.db"), sqlite.Options{})
	if err != nil {
		t.Fatalf("restart: %v", err)
	}
	defer s.Close()
	stored, _ := readVerified(t, s)
	acked := readIDs(t, filepath.Join(dir, "acked"))
	for _, id := range acked {
		if stored[id] != "ok" {
			t.Errorf("acknowledged event %s lost", id)
		}
	}
	doomed := keyed(t, "doomed", "doomed", 3, 0)
	found := 0
	for _, e := range doomed {
		if stored[e.ID.String()] == "doomed" {
			found++
		}
	}
	if found != 0 && found != len(doomed) {
		t.Errorf("%d of the %d events of the failed append are stored: an append is atomic", found, len(doomed))
	}
	t.Logf("after restart: %d acknowledged events stored, failed append recovered from the WAL: %v", len(acked), found > 0)
	if _, err := s.Append(ctx, "doomed", eventstore.NoStream, doomed...); err != nil {
		t.Fatalf("retry of the failed append after restart: %v", err)
	}
	if got, err := s.ReadStream(ctx, "doomed", 0, 10); err != nil || len(got) != len(doomed) {
		t.Errorf("after the retry the stream has %d events, %v; want %d", len(got), err, len(doomed))
	}
	if _, err := s.Append(ctx, "ok", eventstore.Any, keyed(t, "ok", "after-restart", 1, 0)...); err != nil {
		t.Errorf("append after restart: %v", err)
	}
	if err := eventstore.Failure(s); err != nil {
		t.Errorf("restarted store reports %v", err)
	}
}

// TestAcknowledgedAppendSurvivesPowerLoss models a power cut. A child
// process runs the store under fsyncTrap, which copies each file of the
// store, at every fsync of it, as it is at that moment: the copies are what a
// disk holds after a power loss (data written but not yet fsynced sits in the
// page cache and is lost with it). Concurrent appends run; when all have
// returned, the power is cut: the copies are taken as the disk, opened in
// this process with a fresh connection (which recovers from the copied WAL)
// and every acknowledged append must be there, every chain verifying.
//
// What it proves: an Append returns only after its events reached a
// successful fsync, with the WAL and the database file in a state SQLite
// recovers from. With synchronous=NORMAL or OFF (a WAL commit not fsynced)
// acknowledged appends are missing from the copies and the test fails.
// Directory entries are taken as durable (the files exist after the cut).
//
// A control in the same child writes rows through a connection with
// synchronous=OFF into a database under the trap: they must be missing after
// the cut, which shows that the copies are not simply the files as they are.
func TestAcknowledgedAppendSurvivesPowerLoss(t *testing.T) {
	dir, child := inChild(t, checkAfterPowerCut)
	if !child {
		return
	}
	ctx := context.Background()
	disk := filepath.Join(dir, "disk")
	trap := trapFsyncs(t, disk, filepath.Join(dir, "synced"))

	control, err := sql.Open("sqlite", "file:"+filepath.Join(disk, "control", "control.db")+
		"?_pragma=journal_mode(WAL)&_pragma=synchronous(OFF)")
	if err != nil {
		t.Fatal(err)
	}
	must(t, os.MkdirAll(filepath.Join(disk, "control"), 0o700))
	if _, err := control.ExecContext(ctx, `CREATE TABLE rows (n INTEGER)`); err != nil {
		t.Fatal(err)
	}
	for i := range controlRows {
		if _, err := control.ExecContext(ctx, `INSERT INTO rows (n) VALUES (?)`, i); err != nil {
			t.Fatal(err)
		}
	}

	s, err := sqlite.Open(ctx, filepath.Join(disk, "store", "events.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var acked []eventstore.EventData
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 60 {
				stream := fmt.Sprintf("power-%d", w)
				// Large events fill the WAL past its checkpoint size (1000
				// pages), so the database file is synced and the WAL reused too.
				events := keyed(t, stream, fmt.Sprintf("%d/%d", w, i), 3, 3000)
				if _, err := s.Append(ctx, stream, eventstore.Any, events...); err != nil {
					t.Errorf("append: %v", err)
					return
				}
				mu.Lock()
				acked = append(acked, events...)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	must(t, trap.powerCut(filepath.Join(dir, "cut")))
	syncs, _, err := trap.counts()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d appends acknowledged; fsyncs per file: %v", len(acked)/3, syncs)
	if syncs["store/events.db"] < 2 {
		t.Errorf("the database file was synced %d times: the WAL never reached a checkpoint", syncs["store/events.db"])
	}
	writeIDs(t, filepath.Join(dir, "acked"), acked)
}

const controlRows = 100

// checkAfterPowerCut opens the disk as the child of
// TestAcknowledgedAppendSurvivesPowerLoss left it at the power cut.
func checkAfterPowerCut(t *testing.T, dir string) {
	ctx := context.Background()
	cut := filepath.Join(dir, "cut")
	s, err := sqlite.Open(ctx, filepath.Join(cut, "store", "events.db"), sqlite.Options{})
	if err != nil {
		t.Fatalf("open the store after the power cut: %v", err)
	}
	defer s.Close()
	stored, streams := readVerified(t, s)
	acked := readIDs(t, filepath.Join(dir, "acked"))
	lost := 0
	for _, id := range acked {
		if _, ok := stored[id]; !ok {
			lost++
		}
	}
	if lost > 0 || len(acked) == 0 {
		t.Fatalf("power cut lost %d of %d acknowledged events", lost, len(acked))
	}
	t.Logf("after the power cut: %d acknowledged events of %d streams stored, chains verify", len(acked), streams)

	var n int64
	control, err := sql.Open("sqlite", "file:"+filepath.Join(cut, "control", "control.db"))
	must(t, err)
	defer control.Close()
	if err := control.QueryRowContext(ctx, `SELECT COUNT(*) FROM rows`).Scan(&n); err == nil && n == controlRows {
		t.Fatalf("control: all %d rows written with synchronous=OFF survived the cut: the trap does not model a power loss", n)
	}
	t.Logf("control: %d of %d rows written with synchronous=OFF survived the cut", n, controlRows)
}

// keyed returns n events for stream with ids derived from key (the same
// key gives the same events), each with pad bytes of padding.
func keyed(tb testing.TB, stream, key string, n, pad int) []eventstore.EventData {
	tb.Helper()
	events := make([]eventstore.EventData, n)
	for i := range events {
		data, _ := json.Marshal(map[string]any{"key": key, "i": i, "pad": strings.Repeat("x", pad)})
		events[i] = eventstore.EventData{Type: "t.durability", Data: data, Metadata: eventstore.Metadata{IdempotencyKey: key}}
	}
	prepared, err := eventstore.Prepare(stream, events, 0)
	if err != nil {
		tb.Fatal(err)
	}
	return prepared
}

func writeIDs(tb testing.TB, path string, events []eventstore.EventData) {
	tb.Helper()
	var sb strings.Builder
	for _, e := range events {
		fmt.Fprintln(&sb, e.ID)
	}
	must(tb, os.WriteFile(path, []byte(sb.String()), 0o600))
}

func readIDs(tb testing.TB, path string) []string {
	tb.Helper()
	f, err := os.Open(path)
	must(tb, err)
	defer f.Close()
	var ids []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		ids = append(ids, sc.Text())
	}
	must(tb, sc.Err())
	return ids
}

func must(tb testing.TB, err error) {
	tb.Helper()
	if err != nil {
		tb.Fatal(err)
	}
}
