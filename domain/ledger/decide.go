package ledger

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/coinledger/coinledger/domain/money"
)

// Limits on command input.
const (
	maxNameLen  = 64  // wallet and account names
	maxIDLen    = 128 // transfer, hold and import ids
	maxKeyLen   = 255 // idempotency keys
	maxTextLen  = 500 // memos and reasons, in bytes
	maxAllowIPs = 256 // IP allowlist entries
	maxConfirms = 1000
)

// Decide returns the events that carry out c on s, or an error; it never
// changes s. To decide several commands in a row on one in-memory state
// (a batch of one append), Evolve each command's events into the state
// before deciding the next one (Execute does both).
//
// Idempotency: a command whose key s remembers decides no events — with a
// nil error when the request hash matches (a replay: answer with
// s.Replay's Result) and an error wrapping ErrIdempotencyKeyReused when it
// does not. Callers normally ask s.Replay first. Commands that change
// nothing (locking a locked wallet) also decide no events and nil.
func Decide(s *State, c Command) ([]Event, error) {
	if s == nil {
		s = NewState()
	}
	if c == nil {
		return nil, invalid("decide", "no command")
	}
	if s.processed == nil {
		return nil, errors.New("ledger: decide on a state that forgets idempotency keys (NewFold)")
	}
	idem := c.idempotency()
	if len(idem.Key) > maxKeyLen || !utf8.ValidString(idem.Key) {
		return nil, invalid("decide", "idempotency key: want at most %d bytes of UTF-8", maxKeyLen)
	}
	if _, seen, err := s.Replay(idem.Key, idem.RequestHash); seen {
		return nil, err
	}
	switch c := c.(type) {
	case OpenWallet:
		return s.openWallet(c)
	case OpenAccount:
		return s.openAccount(c)
	case Transfer:
		return s.transfer(c)
	case ImportBalance:
		return s.importBalance(c)
	case PlaceHold:
		return s.placeHold(c)
	case ReleaseHold:
		return s.releaseHold(c)
	case ExpireHold:
		return s.expireHold(c)
	case LockWallet:
		return s.lock(c)
	case UnlockWallet:
		return s.unlock(c)
	case AssignAddress:
		return s.assignAddress(c)
	case ObserveDeposit:
		return s.observeDeposit(c)
	case ReverseDeposit:
		return s.reverseDeposit(c)
	case RequestWithdrawal:
		return s.requestWithdrawal(c)
	case BeginBroadcast:
		return s.beginBroadcast(c)
	case AbortBroadcast:
		return s.abortBroadcast(c)
	case RecordBroadcast:
		return s.recordBroadcast(c)
	case MarkUnknown:
		return s.markUnknown(c)
	case FailWithdrawal:
		return s.failWithdrawal(c)
	case ConfirmWithdrawal:
		return s.confirmWithdrawal(c)
	}
	return nil, invalid("decide", "unknown command %T (pass command values, not pointers)", c)
}

// Execute decides c on s and, when that succeeds, evolves the events into
// s. On error s is unchanged. s must not be nil.
func Execute(s *State, c Command) ([]Event, error) {
	if s == nil {
		return nil, errors.New("ledger: execute on a nil state")
	}
	events, err := Decide(s, c)
	if err != nil {
		return nil, err
	}
	for _, e := range events {
		Evolve(s, e)
	}
	return events, nil
}

func (s *State) openWallet(c OpenWallet) ([]Event, error) {
	op := "open wallet " + clip(c.Name)
	if s.opened {
		return nil, fmt.Errorf("%s: %w", op, ErrWalletExists)
	}
	if !validName(c.Name) {
		return nil, invalid(op, "name: want 1-%d of [A-Za-z0-9._-] starting with a letter or digit", maxNameLen)
	}
	if c.Coin.IsZero() {
		return nil, invalid(op, "no coin")
	}
	perms := make([]Permission, 0, len(c.Permissions))
	for _, p := range c.Permissions {
		if !slices.Contains(AllPermissions(), p) {
			return nil, invalid(op, "unknown permission %q", clip(string(p)))
		}
	}
	for _, p := range AllPermissions() { // canonical order, no duplicates
		if slices.Contains(c.Permissions, p) {
			perms = append(perms, p)
		}
	}
	if len(c.IPAllowlist) > maxAllowIPs {
		return nil, invalid(op, "ip allowlist: more than %d entries", maxAllowIPs)
	}
	var ips []string
	for _, entry := range c.IPAllowlist {
		norm, err := normalizeIP(entry)
		if err != nil {
			return nil, invalid(op, "ip allowlist: %v", err)
		}
		if !slices.Contains(ips, norm) {
			ips = append(ips, norm)
		}
	}
	confirms := c.Confirmations
	if confirms == 0 {
		confirms = DefaultConfirmations
	}
	if confirms < 0 || confirms > maxConfirms {
		return nil, invalid(op, "confirmations %d outside 1..%d", c.Confirmations, maxConfirms)
	}
	return []Event{WalletOpened{
		Wallet: c.Name, Coin: c.Coin.Code(), Exponent: c.Coin.Exponent(),
		Permissions: perms, IPAllowlist: ips, Confirmations: confirms,
		Idempotency: c.Idempotency,
	}}, nil
}

func normalizeIP(entry string) (string, error) {
	if strings.Contains(entry, "/") {
		p, err := netip.ParsePrefix(entry)
		if err != nil {
			return "", fmt.Errorf("%q is not an address or CIDR prefix", clip(entry))
		}
		return p.Masked().String(), nil
	}
	a, err := netip.ParseAddr(entry)
	if err != nil || a.Zone() != "" {
		return "", fmt.Errorf("%q is not an address or CIDR prefix", clip(entry))
	}
	return a.String(), nil
}

func (s *State) openAccount(c OpenAccount) ([]Event, error) {
	op := "open account " + clip(c.Name)
	if err := s.mustBeOpen(op); err != nil {
		return nil, err
	}
	if IsSystemAccount(c.Name) {
		return nil, invalid(op, "names starting with '@' are reserved for system accounts")
	}
	if !validName(c.Name) {
		return nil, invalid(op, "name: want 1-%d of [A-Za-z0-9._-] starting with a letter or digit", maxNameLen)
	}
	if _, ok := s.accounts[c.Name]; ok {
		return nil, fmt.Errorf("%s: %w", op, ErrAccountExists)
	}
	return []Event{AccountOpened{Account: c.Name, Idempotency: c.Idempotency}}, nil
}

func (s *State) transfer(c Transfer) ([]Event, error) {
	op := "transfer " + clip(c.ID)
	if err := s.mustBeOpen(op); err != nil {
		return nil, err
	}
	if err := checkID(op, c.ID); err != nil {
		return nil, err
	}
	if err := s.checkAmount(op, c.Amount); err != nil {
		return nil, err
	}
	if err := checkText(op, "memo", c.Memo); err != nil {
		return nil, err
	}
	if c.From == c.To {
		return nil, invalid(op, "from and to are the same account %q", clip(c.From))
	}
	if err := s.userAccount(op, "from", c.From); err != nil {
		return nil, err
	}
	if err := s.userAccount(op, "to", c.To); err != nil {
		return nil, err
	}
	if s.wallet.Locked {
		return nil, fmt.Errorf("%s: %w", op, ErrWalletLocked)
	}
	expired, freed := s.expire(c.From, c.Now)
	u := c.Amount.Units()
	ps := []Posting{{c.From, Available, -u}, {c.To, Available, u}}
	if err := s.checkPostings(op, append(freed, ps...)); err != nil {
		return nil, err
	}
	return append(expired, FundsTransferred{
		ID: c.ID, From: c.From, To: c.To, Amount: u, Memo: c.Memo, Postings: ps,
		Idempotency: c.Idempotency,
	}), nil
}

func (s *State) importBalance(c ImportBalance) ([]Event, error) {
	op := "import " + clip(c.ID)
	if err := s.mustBeOpen(op); err != nil {
		return nil, err
	}
	if err := checkID(op, c.ID); err != nil {
		return nil, err
	}
	if err := s.checkAmount(op, c.Amount); err != nil {
		return nil, err
	}
	if err := checkText(op, "reason", c.Reason); err != nil {
		return nil, err
	}
	if err := s.userAccount(op, "account", c.Account); err != nil {
		return nil, err
	}
	u := c.Amount.Units()
	ps := []Posting{{ImportAccount, Available, -u}, {c.Account, Available, u}}
	if err := s.checkPostings(op, ps); err != nil {
		return nil, err
	}
	return []Event{BalanceImported{
		ID: c.ID, Account: c.Account, Amount: u, Reason: c.Reason, Postings: ps,
		Idempotency: c.Idempotency,
	}}, nil
}

func (s *State) placeHold(c PlaceHold) ([]Event, error) {
	op := "hold " + clip(c.ID)
	if err := s.mustBeOpen(op); err != nil {
		return nil, err
	}
	if err := checkID(op, c.ID); err != nil {
		return nil, err
	}
	if err := s.checkAmount(op, c.Amount); err != nil {
		return nil, err
	}
	if err := checkText(op, "reason", c.Reason); err != nil {
		return nil, err
	}
	if err := CheckHoldExpiry(c.ExpiresAt, c.Now); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	expires := c.ExpiresAt
	if !expires.IsZero() {
		expires = expires.UTC()
	}
	expired, ps, err := s.reserve(op, c.Account, c.Amount, c.Now, func() error {
		if _, ok := s.holds[c.ID]; ok {
			return fmt.Errorf("%s: %w", op, ErrHoldExists)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	u := c.Amount.Units()
	return append(expired, HoldPlaced{
		ID: c.ID, Account: c.Account, Amount: u, Reason: c.Reason, ExpiresAt: expires, Postings: ps,
		Idempotency: c.Idempotency,
	}), nil
}

func (s *State) releaseHold(c ReleaseHold) ([]Event, error) {
	op := "release hold " + clip(c.ID)
	if err := s.mustBeOpen(op); err != nil {
		return nil, err
	}
	if err := checkText(op, "reason", c.Reason); err != nil {
		return nil, err
	}
	h, ok := s.holds[c.ID]
	if !ok {
		return nil, fmt.Errorf("%s: %w", op, ErrHoldNotFound)
	}
	if h.expired(c.Now) {
		return nil, fmt.Errorf("%s: %w: it expired at %s", op, ErrHoldNotFound, h.ExpiresAt.Format(time.RFC3339Nano))
	}
	ps := []Posting{{h.Account, Held, -h.Amount}, {h.Account, Available, h.Amount}}
	if err := s.checkPostings(op, ps); err != nil {
		return nil, err
	}
	return []Event{HoldReleased{
		ID: h.ID, Account: h.Account, Amount: h.Amount, Reason: c.Reason, Postings: ps,
		Idempotency: c.Idempotency,
	}}, nil
}

func (s *State) expireHold(c ExpireHold) ([]Event, error) {
	op := "expire hold " + clip(c.ID)
	if err := s.mustBeOpen(op); err != nil {
		return nil, err
	}
	if c.Now.IsZero() {
		return nil, invalid(op, "needs the current time")
	}
	h, ok := s.holds[c.ID]
	if !ok {
		return nil, fmt.Errorf("%s: %w", op, ErrHoldNotFound)
	}
	if h.ExpiresAt.IsZero() {
		return nil, invalid(op, "the hold does not expire")
	}
	if h.ExpiresAt.After(c.Now) {
		return nil, invalid(op, "the hold expires at %s, after now", h.ExpiresAt.Format(time.RFC3339Nano))
	}
	e := holdExpired(h)
	if err := s.checkPostings(op, e.Postings); err != nil {
		return nil, err
	}
	e.Idempotency = c.Idempotency
	return []Event{e}, nil
}

// holdExpired returns the event that ends h at its expiry.
func holdExpired(h *Hold) HoldExpired {
	return HoldExpired{ID: h.ID, Account: h.Account, Amount: h.Amount, ExpiresAt: h.ExpiresAt,
		Postings: []Posting{{h.Account, Held, -h.Amount}, {h.Account, Available, h.Amount}}}
}

// expire returns a HoldExpired for each hold of account due at now (none
// when now is zero), and all of their postings: a command that spends the
// account's available funds decides them first, so that funds of an
// expired hold are available to it and the expiry is recorded with it.
func (s *State) expire(account string, now time.Time) ([]Event, []Posting) {
	var events []Event
	var ps []Posting
	for _, h := range s.dueHolds(account, now) {
		e := holdExpired(h)
		events = append(events, e)
		ps = append(ps, e.Postings...)
	}
	return events, ps
}

// minHoldExpiry is the earliest expiry a hold may have: earlier times are
// taken for a client's mistake (a zero or Unix-epoch time).
var minHoldExpiry = time.Date(2000, time.January, 1, 0, 0, 0, 0, time.UTC)

// CheckHoldExpiry tells whether expiresAt may be the expiry of a hold
// placed at now: zero (the hold never expires), or after now and not
// before the year 2000. The error wraps ErrValidation and names
// expires_at.
func CheckHoldExpiry(expiresAt, now time.Time) error {
	const field = "expires_at"
	switch {
	case expiresAt.IsZero():
		return nil
	case expiresAt.Before(minHoldExpiry):
		return invalid(field, "%s is before the year 2000", expiresAt.UTC().Format(time.RFC3339Nano))
	case now.IsZero():
		return invalid(field, "an expiring hold needs the current time")
	case !expiresAt.After(now):
		return invalid(field, "%s is not after the current time %s", expiresAt.UTC().Format(time.RFC3339Nano), now.UTC().Format(time.RFC3339Nano))
	}
	return nil
}

func (s *State) lock(c LockWallet) ([]Event, error) {
	const op = "lock wallet"
	if err := s.mustBeOpen(op); err != nil {
		return nil, err
	}
	if err := checkText(op, "reason", c.Reason); err != nil {
		return nil, err
	}
	if s.wallet.Locked {
		return nil, nil
	}
	return []Event{WalletLocked{Reason: c.Reason, Idempotency: c.Idempotency}}, nil
}

func (s *State) unlock(c UnlockWallet) ([]Event, error) {
	const op = "unlock wallet"
	if err := s.mustBeOpen(op); err != nil {
		return nil, err
	}
	if err := checkText(op, "reason", c.Reason); err != nil {
		return nil, err
	}
	if !s.wallet.Locked {
		return nil, nil
	}
	return []Event{WalletUnlocked{Reason: c.Reason, Idempotency: c.Idempotency}}, nil
}

func (s *State) mustBeOpen(op string) error {
	if !s.opened {
		return fmt.Errorf("%s: %w", op, ErrWalletNotFound)
	}
	return nil
}

// userAccount checks that name is an existing user account; role names it
// in the error ("from", "to", "account").
func (s *State) userAccount(op, role, name string) error {
	if IsSystemAccount(name) {
		return invalid(op, "%s: %q is a system account", role, clip(name))
	}
	if !validName(name) {
		return invalid(op, "%s: want 1-%d of [A-Za-z0-9._-] starting with a letter or digit", role, maxNameLen)
	}
	if _, ok := s.accounts[name]; !ok {
		return fmt.Errorf("%s: %w: %s %q", op, ErrAccountNotFound, role, name)
	}
	return nil
}

// checkAmount requires a positive amount of the wallet's coin.
func (s *State) checkAmount(op string, a money.Amount) error {
	if a.Asset() != s.wallet.Coin {
		return fmt.Errorf("%s: %w: amount: %w (wallet holds %s, amount is %s)", op, ErrValidation, money.ErrAssetMismatch, s.wallet.Coin, a.Asset())
	}
	switch a.Sign() {
	case 0:
		return fmt.Errorf("%s: %w: amount: %w", op, ErrValidation, money.ErrZero)
	case -1:
		return fmt.Errorf("%s: %w: amount %s: %w", op, ErrValidation, a, money.ErrNegative)
	}
	return nil
}

// checkPostings tells whether applying ps to s keeps every invariant: the
// postings sum to zero, touch existing accounts, no bucket or account
// total overflows, and no user account bucket goes negative (a negative
// available balance is ErrInsufficientFunds).
func (s *State) checkPostings(op string, ps []Posting) error {
	type touched struct {
		name       string
		was, after Balance
	}
	ts := make([]touched, 0, len(ps))
	var sum int64
	for _, p := range ps {
		var ok bool
		if sum, ok = money.AddUnits(sum, p.Amount); !ok {
			return fmt.Errorf("%s: %w: postings: %w", op, ErrValidation, money.ErrOverflow)
		}
		i := slices.IndexFunc(ts, func(t touched) bool { return t.name == p.Account })
		if i < 0 {
			b, ok := s.accounts[p.Account]
			if !ok {
				return fmt.Errorf("%s: %w: %q", op, ErrAccountNotFound, p.Account)
			}
			ts = append(ts, touched{name: p.Account, was: *b, after: *b})
			i = len(ts) - 1
		}
		v := ts[i].after.bucket(p.Bucket)
		if v == nil {
			return fmt.Errorf("%s: posting to unknown bucket %q", op, p.Bucket)
		}
		if *v, ok = money.AddUnits(*v, p.Amount); !ok {
			return fmt.Errorf("%s: %w: %s %s balance: %w", op, ErrValidation, p.Account, p.Bucket, money.ErrOverflow)
		}
	}
	if sum != 0 {
		return fmt.Errorf("%s: postings sum to %d, not zero", op, sum)
	}
	for _, t := range ts {
		if _, ok := total(t.after); !ok {
			return fmt.Errorf("%s: %w: %s total balance: %w", op, ErrValidation, t.name, money.ErrOverflow)
		}
		if IsSystemAccount(t.name) {
			continue
		}
		if t.after.Available < 0 {
			return fmt.Errorf("%s: %w: %s has %s available, needs %s", op, ErrInsufficientFunds, t.name,
				money.New(s.wallet.Coin, t.was.Available), money.New(s.wallet.Coin, t.was.Available-t.after.Available))
		}
		if t.after.Pending < 0 || t.after.Held < 0 {
			return fmt.Errorf("%s: %s would have a negative balance %+v", op, t.name, t.after)
		}
	}
	return nil
}

func (b *Balance) bucket(k Bucket) *int64 {
	switch k {
	case Available:
		return &b.Available
	case Pending:
		return &b.Pending
	case Held:
		return &b.Held
	}
	return nil
}

// validName: 1-64 of [A-Za-z0-9._-], starting with a letter or digit.
func validName(s string) bool {
	if s == "" || len(s) > maxNameLen || !alnum(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if c := s[i]; !alnum(c) && c != '.' && c != '_' && c != '-' {
			return false
		}
	}
	return true
}

func checkID(op, id string) error {
	ok := id != "" && len(id) <= maxIDLen
	for i := 0; ok && i < len(id); i++ {
		c := id[i]
		ok = alnum(c) || c == '.' || c == '_' || c == ':' || c == '-'
	}
	if !ok {
		return invalid(op, "id: want 1-%d of [A-Za-z0-9._:-]", maxIDLen)
	}
	return nil
}

func checkText(op, field, s string) error {
	if len(s) > maxTextLen || !utf8.ValidString(s) {
		return invalid(op, "%s: want at most %d bytes of UTF-8", field, maxTextLen)
	}
	return nil
}

func alnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// reserve checks that account may move amount from available to held —
// a user account, an unlocked wallet, unused (the caller's check) and
// enough available once its holds due at now are expired — and returns
// those expiries (to be decided before the reservation) and the postings,
// in that order of checks.
func (s *State) reserve(op, account string, amount money.Amount, now time.Time, unused func() error) ([]Event, []Posting, error) {
	if err := s.userAccount(op, "account", account); err != nil {
		return nil, nil, err
	}
	if s.wallet.Locked {
		return nil, nil, fmt.Errorf("%s: %w", op, ErrWalletLocked)
	}
	if err := unused(); err != nil {
		return nil, nil, err
	}
	expired, freed := s.expire(account, now)
	u := amount.Units()
	ps := []Posting{{account, Available, -u}, {account, Held, u}}
	if err := s.checkPostings(op, append(freed, ps...)); err != nil {
		return nil, nil, err
	}
	return expired, ps, nil
}
