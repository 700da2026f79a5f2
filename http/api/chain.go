package api

import (
	"net/http"

	"github.com/coinledger/coinledger/domain/ledger"
	"github.com/coinledger/coinledger/domain/money"
	"github.com/coinledger/coinledger/eventstore"
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
	TxID string `json:"txid"`
	Vout int    `json:"vout"`
}

type simulateBlocksRequest struct {
	Count int `json:"count"`
}

type simulatedBlocks struct {
	Height int `json:"height"`
}

var errNotSimulated = &apiError{status: http.StatusConflict, code: "backend_not_simulated",
	detail: "the wallet's coin is not bound to the simulated chain"}

// createAddress gives an account a new deposit address from the coin's
// backend and records which account it belongs to.
func (h *handlers) createAddress(c echo.Context) error {
	w := walletOf(c)
	if h.d.Chain == nil || h.d.Chain.Coin() != w.Coin.Code() {
		return errNotSimulated
	}
	account, address := c.Param("account"), h.d.Chain.NewAddress()
	res, err := h.execute(c, w.Name, "", func(*ledger.State) (ledger.Command, error) {
		return ledger.AssignAddress{Account: account, Address: address}, nil
	})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, addressResponse{Wallet: w.Name, Account: account, Address: address, Position: res.Position})
}

// simulateDeposit pays an address on the simulated chain, mines the
// confirmations asked for, and notifies the ledger as walletnotify would.
func (h *handlers) simulateDeposit(c echo.Context) error {
	w := walletOf(c)
	if h.d.Chain == nil || h.d.Chain.Coin() != w.Coin.Code() {
		return errNotSimulated
	}
	var req simulateDepositRequest
	if _, err := bind(c, &req); err != nil {
		return err
	}
	amount, err := money.ParsePositive(req.Amount, w.Coin)
	if err != nil {
		return err
	}
	if req.Confirmations < 0 || req.Confirmations > 1000 {
		return invalidFields(fieldError{Field: "confirmations", Message: "must be from 0 to 1000"})
	}
	txid := h.d.Chain.Pay(req.Address, amount.Units())
	if req.Confirmations > 0 {
		h.d.Chain.Mine(req.Confirmations)
	}
	if err := h.notify(c, w.Name, txid); err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, simulatedTransaction{TxID: txid, Vout: 0})
}

// simulateBlocks mines blocks and brings every tracked deposit of the
// wallet up to date, as the block poller does with a real node.
func (h *handlers) simulateBlocks(c echo.Context) error {
	w := walletOf(c)
	if h.d.Chain == nil || h.d.Chain.Coin() != w.Coin.Code() {
		return errNotSimulated
	}
	var req simulateBlocksRequest
	if _, err := bind(c, &req); err != nil {
		return err
	}
	if req.Count < 1 || req.Count > 1000 {
		return invalidFields(fieldError{Field: "count", Message: "must be from 1 to 1000"})
	}
	height := h.d.Chain.Mine(req.Count)
	deposits, err := h.d.Wallets.TrackedDeposits(c.Request().Context(), w.Name)
	if err != nil {
		return err
	}
	for _, d := range deposits {
		if err := h.notify(c, w.Name, d.TxID); err != nil {
			return err
		}
	}
	return c.JSON(http.StatusOK, simulatedBlocks{Height: height})
}

// notify records what the chain says of txid now: idempotent, so the same
// notification any number of times changes nothing.
func (h *handlers) notify(c echo.Context, wallet, txid string) error {
	st, err := h.d.Chain.Transaction(txid)
	if err != nil {
		return err
	}
	meta := eventstore.Metadata{Actor: "adapter:null", CorrelationID: c.Response().Header().Get(echo.HeaderXRequestID)}
	res, err := h.d.Wallets.Execute(c.Request().Context(), meta, wallet, func(s *ledger.State) (ledger.Command, error) {
		return ledger.ObserveDeposit{TxID: txid, Vout: 0, Address: st.Address, Amount: money.New(s.Coin(), st.Amount),
			Confirmations: st.Confirmations, BlockHash: st.BlockHash}, nil
	})
	if err != nil {
		return err
	}
	h.readYourWrite(c, wallet, res.Position)
	return nil
}
