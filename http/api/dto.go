package api

import "time"

// Wire types of the REST API. Amounts are exact decimal strings in coin
// units with exactly the coin's decimals ("0.00150000"); times are RFC 3339.

type loginRequest struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

type tokenRequest struct {
	GrantType    string `json:"grant_type"`
	RefreshToken string `json:"refresh_token"`
}

type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	TokenType    string `json:"token_type"` // always "Bearer"
	ExpiresIn    int    `json:"expires_in"` // seconds
}

type meResponse struct {
	Username string         `json:"username"`
	Roles    []string       `json:"roles"`
	Wallets  []walletAccess `json:"wallets"`
}

type walletAccess struct {
	Wallet      string   `json:"wallet"`
	Permissions []string `json:"permissions"`
}

type createWalletRequest struct {
	Name          string   `json:"name"`
	Coin          string   `json:"coin"`
	Permissions   []string `json:"permissions"`
	IPAllowlist   []string `json:"ip_allowlist,omitempty"`
	Confirmations int      `json:"confirmations,omitempty"`
}

type walletResponse struct {
	Name          string   `json:"name"`
	Coin          string   `json:"coin"`
	Decimals      int      `json:"decimals"`
	Permissions   []string `json:"permissions"`
	IPAllowlist   []string `json:"ip_allowlist"`
	Confirmations int      `json:"confirmations"`
	Locked        bool     `json:"locked"`
	// Effective permissions of the caller on this wallet.
	Effective []string `json:"effective_permissions"`
	Position  uint64   `json:"position"`
}

type walletList struct {
	Wallets []walletResponse `json:"wallets"`
}

type lockRequest struct {
	Reason string `json:"reason,omitempty"`
}

type createAccountRequest struct {
	Name string `json:"name"`
}

type balance struct {
	Available string `json:"available"`
	Pending   string `json:"pending"`
	Held      string `json:"held"`
	Total     string `json:"total"`
}

type accountResponse struct {
	Wallet   string  `json:"wallet"`
	Name     string  `json:"name"`
	Balance  balance `json:"balance"`
	Position uint64  `json:"position"` // of the last event that changed the account
}

type accountList struct {
	Accounts []accountResponse `json:"accounts"`
}

type entry struct {
	Position     uint64    `json:"position"`
	Time         time.Time `json:"time"`
	Kind         string    `json:"kind"` // transfer_in, transfer_out, import, hold, hold_release, hold_expiry
	Reference    string    `json:"reference"`
	Counterparty string    `json:"counterparty,omitempty"`
	Memo         string    `json:"memo,omitempty"`
	// Change of each bucket; "0.00000000" for untouched ones.
	Available    string  `json:"available"`
	Pending      string  `json:"pending"`
	Held         string  `json:"held"`
	BalanceAfter balance `json:"balance_after"`
}

type entryPage struct {
	Entries []entry `json:"entries"`
	// Next is the cursor for the following (older) page; empty on the last page.
	Next string `json:"next,omitempty"`
}

type balanceAt struct {
	Wallet   string    `json:"wallet"`
	Account  string    `json:"account"`
	Position uint64    `json:"position"` // the position the balance is as of
	Time     time.Time `json:"time,omitzero"`
	Balance  balance   `json:"balance"`
}

type transferRequest struct {
	From   string `json:"from"`
	To     string `json:"to"`
	Amount string `json:"amount"`
	Memo   string `json:"memo,omitempty"`
}

type transferCreated struct {
	ID       string `json:"id"`
	Position uint64 `json:"position"`
}

type transferResponse struct {
	ID       string    `json:"id"`
	Wallet   string    `json:"wallet"`
	From     string    `json:"from"`
	To       string    `json:"to"`
	Amount   string    `json:"amount"`
	Memo     string    `json:"memo,omitempty"`
	Position uint64    `json:"position"`
	Time     time.Time `json:"time"`
}

type importRequest struct {
	Amount string `json:"amount"`
	Reason string `json:"reason"`
}

type holdRequest struct {
	Amount    string     `json:"amount"`
	Reason    string     `json:"reason,omitempty"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
}

type holdCreated struct {
	ID       string `json:"id"`
	Position uint64 `json:"position"`
}

type holdResponse struct {
	ID        string     `json:"id"`
	Wallet    string     `json:"wallet"`
	Account   string     `json:"account"`
	Amount    string     `json:"amount"`
	Reason    string     `json:"reason,omitempty"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	Status    string     `json:"status"`   // active, released or expired
	Position  uint64     `json:"position"` // of the event that last changed the hold
}

type releaseRequest struct {
	Reason string `json:"reason,omitempty"`
}

// positionResponse answers commands that create nothing addressable.
type positionResponse struct {
	Position uint64 `json:"position"`
}

// problem is an RFC 9457 problem document.
type problem struct {
	Type     string `json:"type"`
	Title    string `json:"title"`
	Status   int    `json:"status"`
	Detail   string `json:"detail,omitempty"`
	Instance string `json:"instance,omitempty"`
	Code     string `json:"code"`
	// Errors lists field-level problems of a validation_failed document.
	Errors []fieldError `json:"errors,omitempty"`
}

type fieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

type createUserRequest struct {
	Username string   `json:"username"`
	Email    string   `json:"email"`
	Password string   `json:"password"`
	Roles    []string `json:"roles,omitempty"`
}

type userResponse struct {
	Username string         `json:"username"`
	Email    string         `json:"email"`
	Roles    []string       `json:"roles"`
	Disabled bool           `json:"disabled"`
	Wallets  []walletAccess `json:"wallets"`
}

type userList struct {
	Users []userResponse `json:"users"`
}

type grantRequest struct {
	Permissions []string `json:"permissions"`
}

type createAPIKeyRequest struct {
	Name    string         `json:"name"`
	Roles   []string       `json:"roles,omitempty"`
	Wallets []walletAccess `json:"wallets"`
}

type apiKeyCreated struct {
	ID        string         `json:"id"`
	Name      string         `json:"name"`
	Key       string         `json:"key"` // shown once
	Roles     []string       `json:"roles"`
	Wallets   []walletAccess `json:"wallets"`
	CreatedAt time.Time      `json:"created_at"`
}
