package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/coinledger/coinledger/app/audit"
	domain "github.com/coinledger/coinledger/domain/audit"
	"github.com/coinledger/coinledger/domain/liability"
	"github.com/coinledger/coinledger/domain/money"
	"github.com/coinledger/coinledger/projections"
	"golang.org/x/sync/errgroup"
)

const auditSigningUsage = `usage: coinledger audit <command>

  checkpoint          sign a checkpoint of the log now, at its head, and print it
  checkpoints [-from N] [-o FILE]
                      export the signed checkpoints, one JSON object a line (NDJSON),
                      for an auditor who keeps them out of band
  public-key [-o FILE]
                      write the checkpoint keys' public halves (the current key and the
                      retired ones, with their ids), as GET /api/v1/audit/public-key
                      serves them
  rotate-key          replace the signing key by a fresh one; the old key's public half
                      stays listed, so the checkpoints it signed still verify; the
                      liability salt secret stays (a running server signs with the new
                      key from its next checkpoint)
  verify-proof -proof FILE -account WALLET/ACCOUNT -key KEYS_FILE
                      verify, offline, a proof of liabilities (the answer of GET
                      /api/v1/wallets/{w}/accounts/{a}/liability-proof): the checkpoint's
                      signature with the keys (public-key's file, or one key in hex), and
                      that the account's balance is counted in the signed total

checkpoint and checkpoints open the stores the configuration names (-config FILE), or,
while a running server holds the embedded store, go through its admin API (checkpoint:
POST /api/v1/audit/checkpoints; checkpoints: GET /api/v1/audit/checkpoints). public-key
and rotate-key use the key file (audit.key_file, default DATA_DIR/audit-keys.json);
public-key with -url asks the server instead. verify-proof needs neither.

` + remoteUsage

// auditSigningCmd runs the audit subcommands of checkpoints and proofs;
// ok is false for another subcommand.
func auditSigningCmd(ctx context.Context, sub string, args []string) (ok bool, err error) {
	switch sub {
	case "checkpoint":
		return true, auditCheckpoint(ctx, args)
	case "checkpoints":
		return true, auditCheckpoints(ctx, args)
	case "public-key":
		return true, auditPublicKey(ctx, args)
	case "rotate-key":
		return true, auditRotateKey(args)
	case "verify-proof":
		return true, auditVerifyProof(args)
	}
	return false, nil
}

// auditCheckpoint signs a checkpoint now: through the server when it holds
// the store, else with a signer of its own over the stores, which resumes
// from the server's snapshot of it in the read-model database.
func auditCheckpoint(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("audit checkpoint", flag.ContinueOnError)
	config := fs.String("config", os.Getenv("COINLEDGER_CONFIG"), "YAML configuration file")
	rf := addRemoteFlags(fs)
	if _, err := parseFlags(fs, auditSigningUsage, args, 0); err != nil {
		return err
	}
	cfg, err := loadConfigFile("audit checkpoint", *config)
	if err != nil {
		return err
	}
	var c domain.Checkpoint
	store, db, closeStores, err := openStores(ctx, cfg)
	switch {
	case errors.Is(err, errStoreLocked):
		r := usingServer("audit checkpoint", rf.client(cfg.Listen, cfg.AdminPassword.Reveal()))
		err = r.call(ctx, http.MethodPost, "/audit/checkpoints", nil, &c)
	case err != nil:
		return fmt.Errorf("audit checkpoint: %w", err)
	default:
		defer closeStores()
		keys, kerr := auditKeys(cfg)
		if kerr != nil {
			return kerr
		}
		signer := audit.NewSigner(store, audit.SignerOptions{Keys: keys, Every: cfg.Audit.CheckpointEvery, Interval: -1})
		runner := projections.NewRunner(db, store, projections.Options{Logger: slog.New(slog.DiscardHandler)}, projections.Follow(signer))
		c, err = signOnce(ctx, runner, signer)
	}
	if err != nil {
		return fmt.Errorf("audit checkpoint: %w", err)
	}
	return writeJSONLine(os.Stdout, c)
}

// signOnce runs runner and signer until signer has made a checkpoint at
// the head of the log, and returns it.
func signOnce(ctx context.Context, runner *projections.Runner, signer *audit.Signer) (domain.Checkpoint, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return runner.Run(gctx) })
	g.Go(func() error {
		return signer.Run(gctx, func(ctx context.Context) error { return runner.CaughtUp(ctx, audit.SignerName) })
	})
	c, err := signer.Checkpoint(gctx)
	cancel()
	if werr := g.Wait(); err == nil && werr != nil && !errors.Is(werr, context.Canceled) {
		err = werr
	}
	return c, err
}

// auditCheckpoints exports the checkpoints as NDJSON.
func auditCheckpoints(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("audit checkpoints", flag.ContinueOnError)
	config := fs.String("config", os.Getenv("COINLEDGER_CONFIG"), "YAML configuration file")
	from := fs.Uint64("from", 1, "first checkpoint number")
	out := fs.String("o", "", "output file (default: standard output)")
	rf := addRemoteFlags(fs)
	if _, err := parseFlags(fs, auditSigningUsage, args, 0); err != nil {
		return err
	}
	cfg, err := loadConfigFile("audit checkpoints", *config)
	if err != nil {
		return err
	}
	var page func(from uint64) ([]domain.Checkpoint, error)
	store, closeStore, err := openEventStore(ctx, cfg.EventStore.Reveal())
	switch {
	case errors.Is(err, errStoreLocked):
		r := usingServer("audit checkpoints", rf.client(cfg.Listen, cfg.AdminPassword.Reveal()))
		page = func(from uint64) ([]domain.Checkpoint, error) {
			var p struct {
				Checkpoints []domain.Checkpoint `json:"checkpoints"`
			}
			err := r.call(ctx, http.MethodGet, "/audit/checkpoints?limit=1000&from="+strconv.FormatUint(from, 10), nil, &p)
			return p.Checkpoints, err
		}
	case err != nil:
		return fmt.Errorf("audit checkpoints: %w", err)
	default:
		defer closeStore()
		page = func(from uint64) ([]domain.Checkpoint, error) { return audit.ListCheckpoints(ctx, store, from, 1000) }
	}
	w, finish, err := exportOutput(*out, false)
	if err != nil {
		return fmt.Errorf("audit checkpoints: %w", err)
	}
	n := 0
	for next := max(*from, 1); ; {
		list, perr := page(next)
		if err = perr; err != nil {
			break
		}
		for _, c := range list {
			if err = writeJSONLine(w, c); err != nil {
				break
			}
			n, next = n+1, c.Number+1
		}
		if err != nil || len(list) == 0 {
			break
		}
	}
	if ferr := finish(); err == nil {
		err = ferr
	}
	if err != nil {
		return fmt.Errorf("audit checkpoints: %w", err)
	}
	fmt.Fprintf(os.Stderr, "audit checkpoints: %d checkpoints written\n", n)
	return nil
}

// auditPublicKey writes the public keys: from the key file, or from the
// server at -url.
func auditPublicKey(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("audit public-key", flag.ContinueOnError)
	config := fs.String("config", os.Getenv("COINLEDGER_CONFIG"), "YAML configuration file")
	out := fs.String("o", "", "output file (default: standard output)")
	rf := addRemoteFlags(fs)
	if _, err := parseFlags(fs, auditSigningUsage, args, 0); err != nil {
		return err
	}
	var doc []byte
	if *rf.url != "" {
		var err error
		if doc, _, err = serverPublicKeys(ctx, rf.client("", "")); err != nil {
			return fmt.Errorf("audit public-key: %w", err)
		}
	} else {
		cfg, err := loadConfigFile("audit public-key", *config)
		if err != nil {
			return err
		}
		k, err := readKeyring(auditKeyPath(cfg))
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("audit public-key: no key file at %s (the server creates it at its first start; or ask the server with -url)", auditKeyPath(cfg))
		}
		if err != nil {
			return fmt.Errorf("audit public-key: %w", err)
		}
		if doc, err = audit.MarshalPublicKeys(k.PublicKeys()); err != nil {
			return err
		}
	}
	w, finish, err := exportOutput(*out, false)
	if err != nil {
		return fmt.Errorf("audit public-key: %w", err)
	}
	_, err = w.Write(append(doc, '\n'))
	if ferr := finish(); err == nil {
		err = ferr
	}
	return err
}

// serverPublicKeys fetches the public keys r's server serves (no login:
// they are public) and returns the document as served and its keys.
func serverPublicKeys(ctx context.Context, r *remote) ([]byte, []audit.PublicKey, error) {
	resp, err := r.do(ctx, http.MethodGet, "/audit/public-key", nil)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	doc, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, nil, err
	}
	pubs, err := audit.ParsePublicKeys(doc)
	if err != nil {
		return nil, nil, fmt.Errorf("the server's public keys: %w", err)
	}
	return doc, pubs, nil
}

// auditRotateKey replaces the signing key in the key file.
func auditRotateKey(args []string) error {
	fs := flag.NewFlagSet("audit rotate-key", flag.ContinueOnError)
	config := fs.String("config", os.Getenv("COINLEDGER_CONFIG"), "YAML configuration file")
	if _, err := parseFlags(fs, auditSigningUsage, args, 0); err != nil {
		return err
	}
	cfg, err := loadConfigFile("audit rotate-key", *config)
	if err != nil {
		return err
	}
	old, rotated, err := rotateKeyring(auditKeyPath(cfg))
	if err != nil {
		return fmt.Errorf("audit rotate-key: %w", err)
	}
	fmt.Printf("rotated: key %s signs from now on; key %s is retired (it still verifies its checkpoints); %d keys listed\n",
		rotated.KeyID(), old.KeyID(), len(rotated.PublicKeys()))
	return nil
}

// proofFile is the answer of the liability-proof endpoint, as saved.
type proofFile struct {
	Account    string          `json:"account"`
	Checkpoint json.RawMessage `json:"checkpoint"`
	Proof      json.RawMessage `json:"proof"`
}

// auditVerifyProof verifies a saved proof of liabilities offline.
func auditVerifyProof(args []string) error {
	fs := flag.NewFlagSet("audit verify-proof", flag.ContinueOnError)
	proofPath := fs.String("proof", "", "the saved answer of GET /api/v1/wallets/{w}/accounts/{a}/liability-proof")
	account := fs.String("account", "", "your account's id: WALLET/ACCOUNT")
	keyPath := fs.String("key", "", "the public keys (audit public-key's file, or one Ed25519 public key in hex)")
	if _, err := parseFlags(fs, auditSigningUsage, args, 0); err != nil {
		return err
	}
	if *proofPath == "" || *account == "" || *keyPath == "" {
		return usageError("audit verify-proof: -proof, -account and -key are required\n\n" + auditSigningUsage)
	}
	report, err := verifyProofFiles(*proofPath, *account, *keyPath)
	if err != nil {
		return fmt.Errorf("audit verify-proof: %w", err)
	}
	fmt.Println(report)
	return nil
}

// verifyProofFiles checks the proof in proofPath for account with the keys
// in keyPath and says what it proved.
func verifyProofFiles(proofPath, account, keyPath string) (string, error) {
	keyDoc, err := os.ReadFile(keyPath)
	if err != nil {
		return "", err
	}
	keys, err := audit.ParsePublicKeys(keyDoc)
	if err != nil {
		return "", err
	}
	raw, err := os.ReadFile(proofPath)
	if err != nil {
		return "", err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var f proofFile
	if err := dec.Decode(&f); err != nil {
		return "", fmt.Errorf("%s: %w", proofPath, err)
	}
	c, err := domain.ParseCheckpoint(f.Checkpoint)
	if err != nil {
		return "", fmt.Errorf("%s: %w", proofPath, err)
	}
	p, err := liability.ParseProof(f.Proof)
	if err != nil {
		return "", fmt.Errorf("%s: %w", proofPath, err)
	}
	if err := c.Verify(audit.VerifyingKeys(keys)); err != nil {
		return "", fmt.Errorf("the checkpoint is not signed by these keys: %w", err)
	}
	root, ok := c.Liability(p.Coin)
	if !ok {
		return "", fmt.Errorf("checkpoint %d signs no liabilities of %s", c.Number, p.Coin)
	}
	// The account is the one the user gives: the file's own is only a
	// hint, and a proof made for another account does not verify.
	if err := liability.Verify(p, root, account); err != nil {
		return "", fmt.Errorf("account %s at checkpoint %d: %w", account, c.Number, err)
	}
	return fmt.Sprintf("ok: checkpoint %d (log position %d, %d events, made %s) is signed by key %s, and it counts "+
		"the balance %s of %s in the total %s of %s the service owes its accounts. Compare the balance with "+
		"your own records at that time.",
		c.Number, c.Position, c.Events, c.Time.Format(time.RFC3339), c.KeyID,
		coinAmount(p.Coin, p.Balance), account, coinAmount(p.Coin, root.Total), p.Coin), nil
}

// coinAmount writes minor units of coin in coin units when the coin is
// known ("1.25000000 BTC"), else as minor units.
func coinAmount(coin string, units int64) string {
	if asset, ok := money.Lookup(coin); ok {
		return money.New(asset, units).String() + " " + coin
	}
	return strconv.FormatInt(units, 10) + " minor units"
}

// writeJSONLine writes v as one line of JSON.
func writeJSONLine(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}
