// Package webhooks is the command side of integrators' webhooks and the
// follower that turns a wallet's events into their deliveries.
//
// Service registers, shows and deletes hooks (domain/hook) for their
// owners; a hook's URL must be one the egress policy allows (checked at
// registration on the URL and every address its host resolves to, and
// again by the outbox's guarded client on the address each delivery
// connects to). Its signing secret is generated here, shown once in the
// answer to the registration and kept sealed in the log.
//
// Dispatcher follows the log under the projection runner: for every
// ledger event of a kind a live hook asks for it queues one delivery in
// the outbox (app/outbox), which sends it signed, at least once, with
// retries, a delivery log and redelivery.
package webhooks

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"time"

	"github.com/google/uuid"

	"github.com/coinledger/coinledger/app/outbox"
	"github.com/coinledger/coinledger/domain/egress"
	"github.com/coinledger/coinledger/domain/hook"
	"github.com/coinledger/coinledger/domain/identity"
	"github.com/coinledger/coinledger/domain/ledger"
	"github.com/coinledger/coinledger/eventstore"
	"github.com/coinledger/coinledger/eventstore/seal"
)

// SecretPrefix starts every generated signing secret.
const SecretPrefix = "whsec_"

// Config configures a Service. Store is required.
type Config struct {
	Store eventstore.Store
	// Keyring seals the hooks' secrets in the log (nil: a random keyring,
	// for tests; secrets then do not survive the process).
	Keyring *seal.Keyring
	// Policy says where hooks may point.
	Policy egress.Policy
	// Resolver resolves hook hosts (nil: net.DefaultResolver).
	Resolver egress.Resolver
	// Clock (nil: time.Now).
	Clock func() time.Time
}

// Service executes hook commands. It is safe for concurrent use.
type Service struct {
	*Secrets
	cfg Config
	// index is the dispatcher's, which lists hooks by wallet.
	index *Dispatcher
}

// Secrets reads hooks from the log, their sealed secrets opened: the
// outbox's outbox.Secrets. It is safe for concurrent use.
type Secrets struct {
	repo   *eventstore.Repository[*hook.Hook, hook.Event]
	owners Owners
}

// Owners says whether a hook's owner may still receive its wallet's
// events: it holds read and webhooks there and is enabled. Asked before
// every send, so a revoked grant or a disabled user stops the deliveries.
type Owners interface {
	MayReceive(ctx context.Context, owner, wallet string) (bool, error)
}

// UserAccess is the Owners of users and wallets services: the user's
// grant (admins: anything) ∩ the wallet's permissions must hold read and
// webhooks (identity.User.MayUse).
type UserAccess struct {
	Users interface {
		Get(ctx context.Context, username string) (*identity.User, error)
	}
	Wallets interface {
		Info(ctx context.Context, wallet string) (ledger.Wallet, error)
	}
}

// MayReceive implements Owners.
func (a UserAccess) MayReceive(ctx context.Context, owner, wallet string) (bool, error) {
	u, err := a.Users.Get(ctx, owner)
	if errors.Is(err, identity.ErrUserNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("owner %s: %w", owner, err)
	}
	w, err := a.Wallets.Info(ctx, wallet)
	if errors.Is(err, ledger.ErrWalletNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("wallet %s: %w", wallet, err)
	}
	return u.MayUse(wallet, w.Permissions, ledger.PermRead, ledger.PermWebhooks), nil
}

var aggregate = eventstore.Aggregate[*hook.Hook, hook.Event]{Initial: hook.New, Evolve: hook.Evolve}

// NewSecrets returns the secrets of the hooks in store, opened with
// keyring (nil: a random one), given only while owners says the hook's
// owner may receive them (nil: always). It does no I/O.
func NewSecrets(store eventstore.Store, keyring *seal.Keyring, owners Owners) *Secrets {
	if keyring == nil {
		keyring = seal.Random()
	}
	codec := eventstore.NewCodecOf(hook.Events()...)
	codec.Seal(keyring, eventstore.Sealing(hook.SecretFields()))
	return &Secrets{repo: eventstore.NewRepository(store, codec, aggregate), owners: owners}
}

// New returns a service and its dispatcher, which queues deliveries with
// queue (register the dispatcher with the projection runner: it also
// answers List). It does no I/O.
func New(cfg Config, queue Queuer) (*Service, *Dispatcher) {
	if cfg.Keyring == nil {
		cfg.Keyring = seal.Random()
	}
	if cfg.Resolver == nil {
		cfg.Resolver = net.DefaultResolver
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	d := newDispatcher(queue, cfg.Clock)
	return &Service{Secrets: NewSecrets(cfg.Store, cfg.Keyring, nil), cfg: cfg, index: d}, d
}

// Registration is what Register is asked for.
type Registration struct {
	Wallet   string
	Owner    string
	URL      string
	Kinds    []hook.Kind
	Accounts []string
}

// Register registers a hook for r.Owner and returns it with its secret
// (the only time the secret is shown) and the position of its Registered.
// Invalid input wraps hook.ErrValidation, a URL the policy forbids
// egress.ErrForbidden, one hook too many hook.ErrTooMany.
func (s *Service) Register(ctx context.Context, meta eventstore.Metadata, r Registration) (hook.Hook, uint64, error) {
	host, err := s.checkURL(r.URL)
	if err != nil {
		return hook.Hook{}, 0, err
	}
	var raw [32]byte
	rand.Read(raw[:])
	c := hook.Register{ID: hook.ID(uuid.NewString()), Wallet: r.Wallet, Owner: r.Owner, URL: r.URL, Kinds: r.Kinds,
		Accounts: r.Accounts, Secret: SecretPrefix + hex.EncodeToString(raw[:]), Live: s.index.live(r.Wallet, r.Owner),
		At: s.cfg.Clock().UTC()}
	if _, err := hook.Decide(hook.New(), c); err != nil {
		return hook.Hook{}, 0, err
	}
	// Last, as the one look-up over the network.
	if err := s.cfg.Policy.CheckHost(ctx, s.cfg.Resolver, host); err != nil {
		return hook.Hook{}, 0, fmt.Errorf("register hook: url: %w", err)
	}
	res, events, err := s.repo.Update(ctx, c.ID.Stream(), meta, func(h *hook.Hook) ([]hook.Event, error) {
		return hook.Decide(h, c)
	})
	if err != nil {
		return hook.Hook{}, 0, fmt.Errorf("register hook on %s: %w", r.Wallet, err)
	}
	h := hook.New()
	for _, e := range events {
		hook.Evolve(h, e)
	}
	return *h, res.Position, nil
}

// checkURL checks what the policy says of a hook's URL without a look-up
// and returns the host name checkHost must resolve ("" : none). A string
// that is no URL is left to the domain's validation.
func (s *Service) checkURL(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", nil
	}
	host, err := s.cfg.Policy.CheckURL(u)
	if err != nil {
		return "", fmt.Errorf("register hook: url: %w", err)
	}
	return host, nil
}

// Get returns hook id of wallet for owner, without its secret. A hook of
// another owner or wallet, a deleted or a missing one is hook.ErrNotFound.
func (s *Service) Get(ctx context.Context, wallet string, id hook.ID, owner string) (hook.Hook, error) {
	h, err := s.load(ctx, id)
	if err != nil {
		return hook.Hook{}, err
	}
	if !h.Live() || h.Owner != owner || h.Wallet != wallet {
		return hook.Hook{}, fmt.Errorf("get hook %s: %w", id, hook.ErrNotFound)
	}
	h.Secret = ""
	return *h, nil
}

func (s *Secrets) load(ctx context.Context, id hook.ID) (*hook.Hook, error) {
	if !id.Valid() {
		return nil, fmt.Errorf("hook %s: %w", id, hook.ErrNotFound)
	}
	l, err := s.repo.Load(ctx, id.Stream())
	if err != nil {
		return nil, fmt.Errorf("load hook %s: %w", id, err)
	}
	return l.State, nil
}

// List returns the live hooks owner has on wallet, by id, without secrets,
// as far as the dispatcher has read the log.
func (s *Service) List(wallet, owner string) []hook.Hook { return s.index.list(wallet, owner) }

// Delete deletes hook id of wallet for by and returns the position of its
// Deleted (of its last event when it was deleted already). A hook of
// another owner or wallet, or a missing one, is hook.ErrNotFound.
func (s *Service) Delete(ctx context.Context, meta eventstore.Metadata, wallet string, id hook.ID, by string) (uint64, error) {
	if !id.Valid() {
		return 0, fmt.Errorf("delete hook %s: %w", id, hook.ErrNotFound)
	}
	res, _, err := s.repo.Update(ctx, id.Stream(), meta, func(h *hook.Hook) ([]hook.Event, error) {
		if h.Exists() && h.Wallet != wallet {
			return nil, fmt.Errorf("delete hook %s: %w", id, hook.ErrNotFound)
		}
		return hook.Decide(h, hook.Delete{By: by, At: s.cfg.Clock().UTC()})
	})
	if err != nil {
		return 0, err
	}
	return res.Position, nil
}

// HookSecret returns the signing secret of a live hook whose owner may
// receive its events, for the outbox. A deleted or missing hook, or one
// whose owner lost the permission, is an error wrapping hook.ErrNotFound
// and outbox.ErrNotFound (its deliveries give up).
func (s *Secrets) HookSecret(ctx context.Context, id string) ([]byte, error) {
	h, err := s.load(ctx, hook.ID(id))
	if err == nil && !h.Live() {
		err = fmt.Errorf("hook %s: %w", id, hook.ErrNotFound)
	}
	if err == nil && s.owners != nil {
		var ok bool
		if ok, err = s.owners.MayReceive(ctx, h.Owner, h.Wallet); err == nil && !ok {
			err = fmt.Errorf("hook %s: its owner may no longer receive the events of %s: %w", id, h.Wallet, hook.ErrNotFound)
		}
	}
	if errors.Is(err, hook.ErrNotFound) {
		return nil, fmt.Errorf("%w: %w", err, outbox.ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	if h.Secret == "" {
		return nil, fmt.Errorf("hook %s: secret not readable (sealed with a key the keyring lacks?)", id)
	}
	return []byte(h.Secret), nil
}

var _ outbox.Secrets = (*Secrets)(nil)
