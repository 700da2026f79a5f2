package api

import (
	"net/http"
	"strconv"
	"time"

	"github.com/coinledger/coinledger/domain/ledger"
	"github.com/coinledger/coinledger/domain/money"
	"github.com/coinledger/coinledger/projections/wallet"
	"github.com/google/uuid"
	"github.com/labstack/echo/v4"
)

func (h *handlers) createAccount(c echo.Context) error {
	var req createAccountRequest
	body, err := bind(c, &req)
	if err != nil {
		return err
	}
	w := walletOf(c)
	hash := requestHash(c, body)
	if _, err := h.execute(c, w.Name, "", func(*ledger.State) (ledger.Command, error) {
		return ledger.OpenAccount{Name: req.Name, Idempotency: ledger.Idempotency{RequestHash: hash}}, nil
	}); err != nil {
		return err
	}
	a, err := wallet.GetAccount(c.Request().Context(), h.d.DB, w.Name, req.Name)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, accountResponseOf(w, a))
}

func accountResponseOf(w ledger.Wallet, a wallet.Account) accountResponse {
	return accountResponse{Wallet: w.Name, Name: a.Name, Balance: balanceOf(w.Coin, a.Balance), Position: a.Position}
}

func (h *handlers) listAccounts(c echo.Context) error {
	if err := h.waitForPosition(c); err != nil {
		return err
	}
	w := walletOf(c)
	as, err := wallet.ListAccountsAt(c.Request().Context(), h.d.DB, w.Name, h.now())
	if err != nil {
		return err
	}
	out := accountList{Accounts: make([]accountResponse, 0, len(as))}
	for _, a := range as {
		out.Accounts = append(out.Accounts, accountResponseOf(w, a))
	}
	return c.JSON(http.StatusOK, out)
}

func (h *handlers) getAccount(c echo.Context) error {
	if err := h.waitForPosition(c); err != nil {
		return err
	}
	w := walletOf(c)
	a, err := wallet.GetAccountAt(c.Request().Context(), h.d.DB, w.Name, c.Param("account"), h.now())
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, accountResponseOf(w, a))
}

// entries lists an account's entries, newest first; ?cursor= continues.
func (h *handlers) entries(c echo.Context) error {
	if err := h.waitForPosition(c); err != nil {
		return err
	}
	w := walletOf(c)
	limit, before, err := pageParams(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	if _, err := wallet.GetAccount(ctx, h.d.DB, w.Name, c.Param("account")); err != nil {
		return err
	}
	es, err := wallet.Entries(ctx, h.d.DB, w.Name, c.Param("account"), before, limit+1)
	if err != nil {
		return err
	}
	a := w.Coin
	page := entryPage{Entries: make([]entry, 0, min(len(es), limit))}
	for i, e := range es {
		if i == limit {
			page.Next = strconv.FormatUint(es[limit-1].Position, 10)
			break
		}
		page.Entries = append(page.Entries, entry{Position: e.Position, Time: e.Time, Kind: e.Kind, Reference: e.Reference,
			Counterparty: e.Counterparty, Memo: e.Memo, Available: format(a, e.Delta.Available),
			Pending: format(a, e.Delta.Pending), Held: format(a, e.Delta.Held), BalanceAfter: balanceOf(a, e.After)})
	}
	return c.JSON(http.StatusOK, page)
}

// balanceAt answers the balance as of ?at= (an RFC 3339 time or an event
// position); without it, the current balance.
func (h *handlers) balanceAt(c echo.Context) error {
	if err := h.waitForPosition(c); err != nil {
		return err
	}
	w := walletOf(c)
	ctx := c.Request().Context()
	account := c.Param("account")
	if _, err := wallet.GetAccount(ctx, h.d.DB, w.Name, account); err != nil {
		return err
	}
	out := balanceAt{Wallet: w.Name, Account: account}
	var b wallet.Balance
	var err error
	at := c.QueryParam("at")
	switch pos, perr := strconv.ParseUint(at, 10, 64); {
	case at == "":
		b, out.Position, err = wallet.CurrentBalance(ctx, h.d.DB, w.Name, account, h.now())
	case perr == nil:
		b, out.Position, err = wallet.BalanceAtPosition(ctx, h.d.DB, w.Name, account, pos)
	default:
		t, terr := time.Parse(time.RFC3339Nano, at)
		if terr != nil {
			return invalidFields(fieldError{Field: "at", Message: "must be an RFC 3339 time or an event position"})
		}
		b, out.Position, err = wallet.BalanceAtTime(ctx, h.d.DB, w.Name, account, t)
		out.Time = t.UTC()
	}
	if err != nil {
		return err
	}
	out.Balance = balanceOf(w.Coin, b)
	return c.JSON(http.StatusOK, out)
}

// importBalance credits an opening balance from the system import account.
func (h *handlers) importBalance(c echo.Context) error {
	var req importRequest
	account := c.Param("account")
	res, err := h.executeAmount(c, &req, true, func() string { return req.Amount },
		func(amount money.Amount, idem ledger.Idempotency) ledger.Command {
			return ledger.ImportBalance{ID: "imp-" + uuid.NewString(), Account: account, Amount: amount, Reason: req.Reason,
				Idempotency: idem}
		})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, transferCreated{ID: res.ID, Position: res.Position})
}
