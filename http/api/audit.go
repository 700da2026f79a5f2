package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/coinledger/coinledger/app/audit"
	domainaudit "github.com/coinledger/coinledger/domain/audit"
	"github.com/coinledger/coinledger/projections"
	"github.com/labstack/echo/v4"
)

// AuditDeps is what the audit endpoints need: the checkpoint signer, the
// prover of liabilities and the keyring (its public keys only are served).
type AuditDeps struct {
	Signer *audit.Signer
	Prover *audit.Prover
	Keys   func() (*audit.Keyring, error)
}

// errAuditUnavailable: the service was started without checkpoint signing.
var errAuditUnavailable = &apiError{status: http.StatusServiceUnavailable, code: "signer_unavailable",
	detail: "this server does not sign checkpoints"}

// checkpointList is a page of checkpoints, oldest first.
type checkpointList struct {
	Checkpoints []domainaudit.Checkpoint `json:"checkpoints"`
	Next        uint64                   `json:"next"`
}

// liabilityProof is an account's proof of liabilities at a checkpoint:
// everything `coinledger audit verify-proof` needs besides the public key.
type liabilityProof struct {
	Account    string                 `json:"account"`
	Checkpoint domainaudit.Checkpoint `json:"checkpoint"`
	Proof      json.RawMessage        `json:"proof"`
}

// listCheckpoints pages through the signed checkpoints from number from (1
// when absent), oldest first.
func (h *handlers) listCheckpoints(c echo.Context) error {
	from, err := uintParam(c, "from", 1)
	if err != nil {
		return err
	}
	limit, err := limitParam(c)
	if err != nil {
		return err
	}
	list, err := audit.ListCheckpoints(c.Request().Context(), h.d.Store, from, limit)
	if err != nil {
		return err
	}
	page := checkpointList{Checkpoints: list, Next: max(from, 1)}
	if len(list) > 0 {
		page.Next = list[len(list)-1].Number + 1
	}
	return c.JSON(http.StatusOK, page)
}

// checkpointTimeout bounds the wait of an on-demand checkpoint for the
// signer to catch up with the log.
const checkpointTimeout = 30 * time.Second

// createCheckpoint makes a checkpoint now, at the head of the log: 201 with
// it.
func (h *handlers) createCheckpoint(c echo.Context) error {
	if h.d.Audit.Signer == nil {
		return errAuditUnavailable
	}
	ctx, cancel := context.WithTimeout(c.Request().Context(), checkpointTimeout)
	defer cancel()
	if other := h.leaderElsewhere(ctx, projections.RoleCheckpointSigner); other != "" {
		return fmt.Errorf("the checkpoint signer runs on instance %s: %w", other, audit.ErrSignerStopped)
	}
	cp, err := h.d.Audit.Signer.Checkpoint(ctx)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) && c.Request().Context().Err() == nil {
			return errors.Join(audit.ErrSignerStopped, err)
		}
		return err
	}
	return c.JSON(http.StatusCreated, cp)
}

// publicKeys serves the checkpoint keys' public halves: the current one and
// every retired one, with their ids.
func (h *handlers) publicKeys(c echo.Context) error {
	if h.d.Audit.Keys == nil {
		return errAuditUnavailable
	}
	k, err := h.d.Audit.Keys()
	if err != nil {
		return err
	}
	doc, err := audit.MarshalPublicKeys(k.PublicKeys())
	if err != nil {
		return err
	}
	return c.JSONBlob(http.StatusOK, doc)
}

// liabilityProof answers the account's inclusion proof at checkpoint
// ?checkpoint=N (the newest when absent).
func (h *handlers) liabilityProof(c echo.Context) error {
	if h.d.Audit.Prover == nil {
		return errAuditUnavailable
	}
	number, err := uintParam(c, "checkpoint", 0)
	if err != nil {
		return err
	}
	w := walletOf(c)
	cp, proof, err := h.d.Audit.Prover.Proof(c.Request().Context(), number, w.Name, c.Param("account"))
	if err != nil {
		return err
	}
	raw, err := json.Marshal(proof)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, liabilityProof{Account: audit.LiabilityAccount(w.Name, c.Param("account")), Checkpoint: cp, Proof: raw})
}
