package api

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/coinledger/coinledger/app/chainsync"
	"github.com/coinledger/coinledger/domain/ledger"
	"github.com/coinledger/coinledger/domain/money"
	"github.com/coinledger/coinledger/projections/custody"
	"github.com/google/uuid"
	"github.com/labstack/echo/v4"
)

type addressResponse struct {
	Wallet   string `json:"wallet"`
	Account  string `json:"account"`
	Address  string `json:"address"`
	Position uint64 `json:"position"`
}

type simulateDepositRequest struct {
	Address       string `json:"address"`
	Amount        string `json:"amount"`
	Confirmations int    `json:"confirmations"`
}

type simulatedTransaction struct {
	TxID     string `json:"txid"`
	Vout     int    `json:"vout"`
	Position uint64 `json:"position"`
}

type simulateBlocksRequest struct {
	Count       int    `json:"count"`
	Reorg       int    `json:"reorg,omitempty"`
	Drop        bool   `json:"drop,omitempty"`
	DoubleSpend string `json:"double_spend,omitempty"`
}

type simulatedBlocks struct {
	Height   int    `json:"height"`
	Position uint64 `json:"position"`
}

var errNotSimulated = &apiError{status: http.StatusConflict, code: "backend_not_simulated",
	detail: "the wallet's coin is not bound to the simulated chain"}

// syncer returns the chain syncer of the wallet's coin.
func (h *handlers) syncer(c echo.Context) (*chainsync.Syncer, error) {
	if h.d.Chains == nil {
		return nil, chainsync.ErrUnknownCoin
	}
	return h.d.Chains.Syncer(walletOf(c).Coin.Code())
}

// createAddress gives an account a new deposit address from the coin's
// backend and records which account it belongs to.
func (h *handlers) createAddress(c echo.Context) error {
	s, err := h.syncer(c)
	if err != nil {
		return err
	}
	w := walletOf(c)
	account := c.Param("account")
	// The account must exist before the node hands out an address.
	if err := h.d.Wallets.View(c.Request().Context(), w.Name, func(st *ledger.State) error {
		if _, ok := st.Balance(account); !ok {
			return ledger.ErrAccountNotFound
		}
		return nil
	}); err != nil {
		return err
	}
	address, err := s.NewAddress(c.Request().Context())
	if err != nil {
		return err
	}
	res, err := h.execute(c, w.Name, "", func(*ledger.State) (ledger.Command, error) {
		return ledger.AssignAddress{Account: account, Address: address}, nil
	})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, addressResponse{Wallet: w.Name, Account: account, Address: address, Position: res.Position})
}

// simulator is what the simulate endpoints need of a coin's backend
// besides chainsync.Backend: a chain whose payments and blocks are
// injected (the null adapter's simulated chain implements it). A backend
// of a real node does not, and its coin answers 409 backend_not_simulated.
type simulator interface {
	// Pay pays amount minor units to address in a new mempool transaction
	// and returns its txid.
	Pay(address string, amount int64) string
	// Mine mines n blocks and returns the new height.
	Mine(n int) int
	// Reorg replaces the newest depth blocks by depth+1 new ones, re-mining
	// their transactions when keep is set and dropping them otherwise; it
	// returns the new height.
	Reorg(depth int, keep bool) int
	// DoubleSpend makes txid conflict with a transaction of the best chain.
	DoubleSpend(txid string) error
}

// simulated returns the syncer of the wallet's coin when it is bound to
// a simulated chain.
func (h *handlers) simulated(c echo.Context) (*chainsync.Syncer, simulator, error) {
	s, err := h.syncer(c)
	if err != nil {
		return nil, nil, errNotSimulated
	}
	sim, ok := s.Backend().(simulator)
	if !ok {
		return nil, nil, errNotSimulated
	}
	return s, sim, nil
}

// simulateDeposit pays an address on the simulated chain, mines the
// confirmations asked for, and handles the transaction as a walletnotify.
func (h *handlers) simulateDeposit(c echo.Context) error {
	s, sim, err := h.simulated(c)
	if err != nil {
		return err
	}
	var req simulateDepositRequest
	if _, err := bind(c, &req); err != nil {
		return err
	}
	amount, err := money.ParsePositive(req.Amount, walletOf(c).Coin)
	if err != nil {
		return err
	}
	if req.Confirmations < 0 || req.Confirmations > 1000 {
		return invalidFields(fieldError{Field: "confirmations", Message: "must be from 0 to 1000"})
	}
	txid := sim.Pay(req.Address, amount.Units())
	if req.Confirmations > 0 {
		sim.Mine(req.Confirmations)
	}
	obs, err := s.Notify(c.Request().Context(), txid)
	if err != nil {
		return err
	}
	h.readYourWrite(c, obs.Position)
	return c.JSON(http.StatusCreated, simulatedTransaction{TxID: txid, Vout: 0, Position: obs.Position})
}

// simulateBlocks mines blocks (after replacing the newest reorg blocks,
// dropping their transactions when drop is set, and double-spending a
// transaction when asked) and brings every tracked transaction up to date,
// as the block poller does with a real node.
func (h *handlers) simulateBlocks(c echo.Context) error {
	s, sim, err := h.simulated(c)
	if err != nil {
		return err
	}
	var req simulateBlocksRequest
	if _, err := bind(c, &req); err != nil {
		return err
	}
	if req.Count < 1 || req.Count > 1000 {
		return invalidFields(fieldError{Field: "count", Message: "must be from 1 to 1000"})
	}
	if req.Reorg < 0 || req.Reorg > 100 {
		return invalidFields(fieldError{Field: "reorg", Message: "must be from 0 to 100"})
	}
	if req.Reorg > 0 {
		sim.Reorg(req.Reorg, !req.Drop)
	}
	if req.DoubleSpend != "" {
		if err := sim.DoubleSpend(req.DoubleSpend); err != nil {
			return invalidFields(fieldError{Field: "double_spend", Message: "not a transaction of the simulated chain"})
		}
	}
	height := sim.Mine(req.Count)
	obs, err := s.Refresh(c.Request().Context())
	if err != nil {
		return err
	}
	h.readYourWrite(c, obs.Position)
	return c.JSON(http.StatusOK, simulatedBlocks{Height: height, Position: obs.Position})
}

type deposit struct {
	ID            string     `json:"id"`
	Wallet        string     `json:"wallet"`
	Account       string     `json:"account"`
	Address       string     `json:"address"`
	TxID          string     `json:"txid"`
	Vout          uint32     `json:"vout"`
	Amount        string     `json:"amount"`
	Confirmations int        `json:"confirmations"`
	BlockHash     string     `json:"block_hash,omitempty"`
	Status        string     `json:"status"`
	Reason        string     `json:"reason,omitempty"`
	Shortfall     string     `json:"shortfall,omitempty"`
	SeenAt        time.Time  `json:"seen_at"`
	ConfirmedAt   *time.Time `json:"confirmed_at,omitempty"`
	Position      uint64     `json:"position"`
}

type depositPage struct {
	Deposits []deposit `json:"deposits"`
	Next     string    `json:"next,omitempty"`
}

func (h *handlers) listDeposits(c echo.Context) error {
	if err := h.waitForPosition(c); err != nil {
		return err
	}
	limit, before, err := pageParams(c)
	if err != nil {
		return err
	}
	f := custody.DepositFilter{Account: c.QueryParam("account"), Status: ledger.DepositStatus(c.QueryParam("status")),
		Before: before, Limit: limit + 1}
	switch f.Status {
	case "", ledger.DepositStatusSeen, ledger.DepositStatusConfirmed, ledger.DepositStatusReversed:
	default:
		return invalidFields(fieldError{Field: "status", Message: "must be seen, confirmed or reversed"})
	}
	w := walletOf(c)
	ds, err := custody.Deposits(c.Request().Context(), h.d.DB, w.Name, f)
	if err != nil {
		return err
	}
	page := depositPage{Deposits: make([]deposit, 0, min(len(ds), limit))}
	for i, d := range ds {
		if i == limit {
			page.Next = strconv.FormatUint(ds[limit-1].SeenPosition, 10)
			break
		}
		r := deposit{ID: d.ID, Wallet: w.Name, Account: d.Account, Address: d.Address, TxID: d.TxID, Vout: d.Vout,
			Amount: format(w.Coin, d.Amount), Confirmations: d.Confirmations, BlockHash: d.BlockHash, Status: string(d.Status),
			Reason: d.Reason, SeenAt: d.SeenAt, Position: d.Position}
		if d.Shortfall > 0 {
			r.Shortfall = format(w.Coin, d.Shortfall)
		}
		if !d.ConfirmedAt.IsZero() {
			r.ConfirmedAt = &d.ConfirmedAt
		}
		page.Deposits = append(page.Deposits, r)
	}
	return c.JSON(http.StatusOK, page)
}

// pageParams reads ?limit= (see limitParam) and a position ?cursor=.
func pageParams(c echo.Context) (limit int, before uint64, err error) {
	if limit, err = limitParam(c); err != nil {
		return 0, 0, err
	}
	if v := c.QueryParam("cursor"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return 0, 0, invalidFields(fieldError{Field: "cursor", Message: "not a cursor of this API"})
		}
		before = n
	}
	return limit, before, nil
}

// limitParam reads ?limit= (1-1000, default 100).
func limitParam(c echo.Context) (int, error) {
	v := c.QueryParam("limit")
	if v == "" {
		return 100, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > 1000 {
		return 0, invalidFields(fieldError{Field: "limit", Message: "must be an integer from 1 to 1000"})
	}
	return n, nil
}

type withdrawalRequest struct {
	Account     string `json:"account"`
	Address     string `json:"address"`
	Amount      string `json:"amount"`
	SubtractFee bool   `json:"subtract_fee,omitempty"`
}

type withdrawalCreated struct {
	ID       string `json:"id"`
	Status   string `json:"status"`
	Position uint64 `json:"position"`
}

// createWithdrawal holds the amount and queues the withdrawal for the
// coin's broadcaster: 202, the outcome is followed at Location.
func (h *handlers) createWithdrawal(c echo.Context) error {
	s, err := h.syncer(c)
	if err != nil {
		return err
	}
	var req withdrawalRequest
	now := h.now()
	res, err := h.executeAmount(c, &req, true, func() string { return req.Amount },
		func(amount money.Amount, idem ledger.Idempotency) ledger.Command {
			return ledger.RequestWithdrawal{ID: "wd-" + uuid.NewString(), Account: req.Account, Address: req.Address,
				Amount: amount, SubtractFee: req.SubtractFee, Now: now, Idempotency: idem}
		})
	if err != nil {
		return err
	}
	s.Wake()
	c.Response().Header().Set(echo.HeaderLocation, "/api/v1/wallets/"+walletOf(c).Name+"/withdrawals/"+res.ID)
	return c.JSON(http.StatusAccepted, withdrawalCreated{ID: res.ID, Status: string(ledger.WithdrawalStatusRequested), Position: res.Position})
}

type withdrawal struct {
	ID            string    `json:"id"`
	Wallet        string    `json:"wallet"`
	Account       string    `json:"account"`
	Address       string    `json:"address"`
	Amount        string    `json:"amount"`
	SubtractFee   bool      `json:"subtract_fee"`
	Status        string    `json:"status"`
	TxID          string    `json:"txid,omitempty"`
	Fee           string    `json:"fee,omitempty"`
	FeeShortfall  string    `json:"fee_shortfall,omitempty"`
	Confirmations int       `json:"confirmations"`
	Error         string    `json:"error,omitempty"`
	RequestedAt   time.Time `json:"requested_at"`
	Position      uint64    `json:"position"`
}

func (h *handlers) getWithdrawal(c echo.Context) error {
	if err := h.waitForPosition(c); err != nil {
		return err
	}
	w := walletOf(c)
	wd, err := custody.GetWithdrawal(c.Request().Context(), h.d.DB, w.Name, c.Param("id"))
	if err != nil {
		return err
	}
	r := withdrawal{ID: wd.ID, Wallet: w.Name, Account: wd.Account, Address: wd.Address, Amount: format(w.Coin, wd.Amount),
		SubtractFee: wd.SubtractFee, Status: string(wd.Status), TxID: wd.TxID, Confirmations: wd.Confirmations, Error: wd.Reason,
		RequestedAt: wd.RequestedAt, Position: wd.Position}
	if wd.TxID != "" {
		r.Fee = format(w.Coin, wd.Fee)
	}
	if wd.FeeShortfall > 0 {
		r.FeeShortfall = format(w.Coin, wd.FeeShortfall)
	}
	return c.JSON(http.StatusOK, r)
}

type rescanResponse struct {
	ID          string     `json:"id"`
	Wallet      string     `json:"wallet"`
	Status      string     `json:"status"`
	StatusURL   string     `json:"status_url"`
	RequestedAt time.Time  `json:"requested_at"`
	FinishedAt  *time.Time `json:"finished_at,omitempty"`
	TxIDs       int        `json:"txids"`
	Error       string     `json:"error,omitempty"`
}

func rescanOf(j chainsync.RescanJob) rescanResponse {
	r := rescanResponse{ID: j.ID, Wallet: j.Wallet, Status: j.Status, RequestedAt: j.RequestedAt, TxIDs: j.TxIDs, Error: j.Err,
		StatusURL: "/api/v1/wallets/" + j.Wallet + "/rescans/" + j.ID}
	if !j.FinishedAt.IsZero() {
		r.FinishedAt = &j.FinishedAt
	}
	return r
}

// rescan starts a listsinceblock rescan of the wallet's coin: 202 with
// the job to poll.
func (h *handlers) rescan(c echo.Context) error {
	s, err := h.syncer(c)
	if err != nil {
		return err
	}
	r := rescanOf(s.StartRescan(c.Request().Context(), walletOf(c).Name))
	c.Response().Header().Set(echo.HeaderLocation, r.StatusURL)
	return c.JSON(http.StatusAccepted, r)
}

func (h *handlers) getRescan(c echo.Context) error {
	s, err := h.syncer(c)
	if err != nil {
		return err
	}
	j, ok := s.Job(walletOf(c).Name, c.Param("id"))
	if !ok {
		return errNotFound
	}
	return c.JSON(http.StatusOK, rescanOf(j))
}

type resolveRequest struct {
	Outcome string `json:"outcome"` // broadcast or failed
	TxID    string `json:"txid,omitempty"`
	Fee     string `json:"fee,omitempty"`
	Reason  string `json:"reason,omitempty"`
}

// resolveWithdrawal is the operator's answer to a withdrawal whose
// broadcast outcome is unknown: it is on the chain (txid and fee, checked
// on the node by the operator) or it is not (its funds are released).
// Only unknown withdrawals are resolved this way (409 withdrawal_state).
func (h *handlers) resolveWithdrawal(c echo.Context) error {
	var req resolveRequest
	if _, err := bind(c, &req); err != nil {
		return err
	}
	id := c.Param("id")
	res, err := h.execute(c, walletOf(c).Name, "", func(st *ledger.State) (ledger.Command, error) {
		w, ok := st.Withdrawal(id)
		if !ok {
			return nil, ledger.ErrWithdrawalNotFound
		}
		if w.Status != ledger.WithdrawalStatusUnknown {
			return nil, fmt.Errorf("withdrawal %s is %s: %w", id, w.Status, ledger.ErrWithdrawalState)
		}
		switch req.Outcome {
		case "broadcast":
			fee, err := money.Parse(req.Fee, st.Coin())
			if err != nil {
				return nil, invalidFields(fieldError{Field: "fee", Message: "want the network fee paid, e.g. 0.00001"})
			}
			return ledger.RecordBroadcast{ID: id, TxID: req.TxID, Fee: fee}, nil
		case "failed":
			return ledger.FailWithdrawal{ID: id, Reason: req.Reason}, nil
		}
		return nil, invalidFields(fieldError{Field: "outcome", Message: "want broadcast or failed"})
	})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, positionResponse{Position: res.Position})
}
