package chainsync

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/coinledger/coinledger/eventstore"
)

// Rescan progress is kept in the stream "chainsync-<coin>": one
// chainsync.scanned event per rescan that saw a new best block, with the
// block to ask listsinceblock from next time.
const (
	checkpointPrefix = "chainsync-"
	TypeScanned      = "chainsync.scanned"
)

type scanned struct {
	LastBlock string `json:"last_block"`
	TxIDs     int    `json:"txids"`
}

// Rescan asks the node for every transaction of the wallet since the last
// rescan (listsinceblock) and notifies each, then records the new
// checkpoint. Start-up and every new block run it, so a lost walletnotify
// costs at most one block of delay. It returns the number of transactions
// looked at.
func (s *Syncer) Rescan(ctx context.Context) (int, error) { return s.scan(ctx, nil) }

// scan is Rescan that also notifies the txids of also, each txid once.
func (s *Syncer) scan(ctx context.Context, also []string) (int, error) {
	s.scanMu.Lock()
	defer s.scanMu.Unlock()
	stream := checkpointPrefix + s.coin
	if !s.scanLoaded {
		last, next, err := s.checkpoint(ctx, stream)
		if err != nil {
			return 0, err
		}
		s.scanLast, s.scanNext, s.scanLoaded = last, next, true
	}
	since, err := s.backend.SinceBlock(ctx, s.scanLast)
	if err != nil {
		return 0, fmt.Errorf("rescan %s since %q: %w", s.coin, s.scanLast, err)
	}
	if _, err := s.notifyAll(ctx, append(slices.Clone(since.TxIDs), also...)); err != nil {
		return 0, fmt.Errorf("rescan %s: %w", s.coin, err)
	}
	if since.LastBlock == s.scanLast || since.LastBlock == "" {
		return len(since.TxIDs), nil
	}
	data, _ := json.Marshal(scanned{LastBlock: since.LastBlock, TxIDs: len(since.TxIDs)}) // plain struct
	_, err = s.reg.store.Append(ctx, stream, eventstore.ExpectRevision(s.scanNext),
		eventstore.EventData{Type: TypeScanned, Data: data, Metadata: s.meta(ctx, "rescan")})
	if err != nil {
		s.scanLoaded = false // another instance wrote one: read it again next time
		return 0, fmt.Errorf("rescan %s: record checkpoint: %w", s.coin, err)
	}
	s.scanLast, s.scanNext = since.LastBlock, s.scanNext+1
	return len(since.TxIDs), nil
}

// checkpoint reads the last block recorded in stream and the stream's
// next revision (once per syncer: scan keeps them after that).
func (s *Syncer) checkpoint(ctx context.Context, stream string) (string, uint64, error) {
	var last string
	var next uint64
	for {
		events, err := s.reg.store.ReadStream(ctx, stream, next, 1000)
		if err != nil {
			return "", 0, fmt.Errorf("rescan %s: read checkpoint: %w", s.coin, err)
		}
		for _, e := range events {
			var sc scanned
			if err := json.Unmarshal(e.Data, &sc); err != nil {
				return "", 0, fmt.Errorf("rescan %s: checkpoint %s: %w", s.coin, e, err)
			}
			last, next = sc.LastBlock, e.Revision+1
		}
		if len(events) < 1000 {
			return last, next, nil
		}
	}
}

// Rescan job statuses.
const (
	RescanRunning   = "running"
	RescanCompleted = "completed"
	RescanFailed    = "failed"
)

// RescanJob is a rescan requested through the API.
type RescanJob struct {
	ID          string
	Wallet      string
	Status      string
	RequestedAt time.Time
	FinishedAt  time.Time // zero while running
	TxIDs       int
	Err         string
}

// maxJobs bounds the jobs kept for status queries (the oldest go first).
const maxJobs = 1000

// StartRescan starts a rescan for wallet in the background and returns
// its job. The rescan covers the wallet's coin (listsinceblock is per node
// wallet); it survives the request that started it.
func (s *Syncer) StartRescan(ctx context.Context, wallet string) RescanJob {
	s.mu.Lock()
	s.jobSeq++
	job := &RescanJob{ID: "rescan-" + strconv.Itoa(s.jobSeq), Wallet: wallet, Status: RescanRunning, RequestedAt: s.opts.Clock().UTC()}
	s.jobs[job.ID] = job
	if len(s.jobs) > maxJobs {
		delete(s.jobs, "rescan-"+strconv.Itoa(s.jobSeq-maxJobs))
	}
	out := *job
	s.mu.Unlock()
	go func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Minute)
		defer cancel()
		n, err := s.Rescan(rctx)
		s.mu.Lock()
		defer s.mu.Unlock()
		job.TxIDs, job.FinishedAt, job.Status = n, s.opts.Clock().UTC(), RescanCompleted
		if err != nil {
			job.Status, job.Err = RescanFailed, err.Error()
			s.log.Warn("rescan failed", "wallet", wallet, "job", job.ID, "err", err)
		}
	}()
	return out
}

// Job returns a rescan job of wallet.
func (s *Syncer) Job(wallet, id string) (RescanJob, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	j, ok := s.jobs[id]
	if !ok || j.Wallet != wallet {
		return RescanJob{}, false
	}
	return *j, true
}
