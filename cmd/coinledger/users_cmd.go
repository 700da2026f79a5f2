package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"

	"golang.org/x/term"

	"github.com/coinledger/coinledger/app/users"
	"github.com/coinledger/coinledger/domain/identity/graphene"
	"github.com/coinledger/coinledger/eventstore"
	"gopkg.in/yaml.v3"
)

const usersUsage = `usage: coinledger users <command>

  add NAME [-email E] [-role R]...   register a user (password: see below)
  grant NAME WALLET PERM[,PERM...]   grant permissions on a wallet
  revoke NAME WALLET                 revoke the user's grant on a wallet
  hash-password                      read a password, print its bcrypt hash (for password_hash
                                     in the configuration file)
  disable NAME                       disable a user: every token, refresh token, API key and
                                     websocket of the user ends at once; logins are refused
  enable NAME                        enable a disabled user (it logs in again; its old
                                     credentials stay revoked)
  import-graphene FILE -wallet W [-wildcard-writes]
                                     import a Graphene api-access.json permission map; the *
                                     entry becomes user "anonymous", read-only unless
                                     -wildcard-writes grants what its API sets map to

Passwords (add, hash-password) come from -password-file FILE (its first line), else a prompt
that does not echo when standard input is a terminal (typed twice), else the first line of
standard input; an empty one is refused.

They take -config FILE and write to the event store the configuration names. While a
running server holds the embedded store, add, grant, revoke, disable and enable go
through its admin API (add then needs -email); import-graphene needs the server
stopped.
` + remoteUsage

// usersCmd runs the users subcommands.
func usersCmd(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return usageError("users: no command given\n\n" + usersUsage)
	}
	cmd, args := args[0], args[1:]
	if cmd == "hash-password" {
		fs := flag.NewFlagSet("users hash-password", flag.ContinueOnError)
		passwordFile := fs.String("password-file", "", "read the password from the first line of this file")
		if _, err := parseFlags(fs, usersUsage, args, 0); err != nil {
			return err
		}
		password, err := readPassword(*passwordFile)
		if err != nil {
			return err
		}
		h, err := users.New(nil, 0).Hash(password)
		if err != nil {
			return err
		}
		fmt.Println(h)
		return nil
	}
	fs := flag.NewFlagSet("users "+cmd, flag.ContinueOnError)
	email := fs.String("email", "", "e-mail address (add)")
	wallet := fs.String("wallet", "", "wallet to grant imported permissions on (import-graphene)")
	wildcardWrites := fs.Bool("wildcard-writes", false,
		"give the * user every permission its API sets map to, not only read (import-graphene)")
	var roles multiFlag
	fs.Var(&roles, "role", "role: admin, auditor or price_feeder (add; repeatable)")
	configPath := fs.String("config", os.Getenv("COINLEDGER_CONFIG"), "YAML configuration file")
	passwordFile := fs.String("password-file", "", "read the new user's password from the first line of this file (add)")
	rf := addRemoteFlags(fs)
	want := map[string]int{"add": 1, "grant": 3, "revoke": 2, "disable": 1, "enable": 1, "import-graphene": 1}
	n, known := want[cmd]
	if !known {
		if cmd == "help" || cmd == "-h" || cmd == "--help" {
			os.Stdout.WriteString(usersUsage)
			return nil
		}
		return usageError(fmt.Sprintf("users: unknown command %q\n\n%s", cmd, usersUsage))
	}
	pos, err := parseFlags(fs, usersUsage, args, n)
	if err != nil {
		return err
	}
	if cmd == "import-graphene" && *wallet == "" {
		return usageError("users import-graphene: -wallet is required\n\n" + usersUsage)
	}
	var password string
	if cmd == "add" {
		if password, err = readPassword(*passwordFile); err != nil {
			return err
		}
	}
	cfg, err := loadConfigFile("users", *configPath)
	if err != nil {
		return err
	}
	var admin userAdmin
	var svc *users.Service
	store, closeStore, err := openEventStore(ctx, cfg.EventStore.Reveal())
	switch {
	case errors.Is(err, errStoreLocked):
		if cmd == "import-graphene" {
			return fmt.Errorf("users import-graphene writes to the store itself (the API has no import): stop the server first: %w", err)
		}
		admin = serverUsers{usingServer("users "+cmd, rf.client(cfg.Listen, cfg.AdminPassword.Reveal()))}
	case err != nil:
		return err
	default:
		defer closeStore()
		if svc, err = usersService(cfg, store, nil, nil, nil); err != nil {
			return err
		}
		admin = storeUsers{svc: svc, meta: eventstore.Metadata{Actor: "cli:" + os.Getenv("USER")}}
	}
	switch cmd {
	case "add":
		if err := admin.add(ctx, pos[0], *email, password, roles); err != nil {
			return err
		}
		fmt.Printf("user %s added\n", pos[0])
	case "grant":
		if err := admin.grant(ctx, pos[0], pos[1], strings.Split(pos[2], ",")); err != nil {
			return err
		}
		fmt.Printf("granted %s on %s to %s\n", pos[2], pos[1], pos[0])
	case "revoke":
		if err := admin.revoke(ctx, pos[0], pos[1]); err != nil {
			return err
		}
		fmt.Printf("revoked %s's grant on %s\n", pos[0], pos[1])
	case "disable", "enable":
		done := "disabled"
		if cmd == "enable" {
			done = "enabled"
		}
		if err := admin.setDisabled(ctx, pos[0], cmd == "disable"); err != nil {
			return err
		}
		fmt.Printf("user %s %s\n", pos[0], done)
	case "import-graphene":
		data, err := os.ReadFile(pos[0])
		if err != nil {
			return err
		}
		m, err := graphene.Parse(data)
		if err != nil {
			return fmt.Errorf("%s: %w", pos[0], err)
		}
		meta := eventstore.Metadata{Actor: "cli:" + os.Getenv("USER")}
		r, err := svc.ImportGraphene(ctx, meta, m, users.ImportOptions{Wallet: *wallet, WildcardWrites: *wildcardWrites})
		for _, u := range r.Imported {
			fmt.Printf("imported %s\n", u)
		}
		for _, sk := range r.Skipped {
			fmt.Printf("skipped %s: %s\n", sk.Username, sk.Reason)
		}
		if r.Wildcard != nil {
			fmt.Printf("the * entry is user %q: unknown usernames log in as it, with permissions %v on %s\n",
				users.Anonymous, r.WildcardPermissions, *wallet)
		}
		return err
	}
	return nil
}

// userAdmin is what the users commands change: in the store, or through
// the running server's admin API.
type userAdmin interface {
	add(ctx context.Context, name, email, password string, roles []string) error
	grant(ctx context.Context, name, wallet string, perms []string) error
	revoke(ctx context.Context, name, wallet string) error
	setDisabled(ctx context.Context, name string, disabled bool) error
}

// storeUsers changes users in the store, recording meta.
type storeUsers struct {
	svc  *users.Service
	meta eventstore.Metadata
}

func (s storeUsers) add(ctx context.Context, name, email, password string, roles []string) error {
	return s.svc.Register(ctx, s.meta, name, email, password, roles)
}

func (s storeUsers) grant(ctx context.Context, name, wallet string, perms []string) error {
	return s.svc.Grant(ctx, s.meta, name, wallet, perms)
}

func (s storeUsers) revoke(ctx context.Context, name, wallet string) error {
	return s.svc.Revoke(ctx, s.meta, name, wallet)
}

func (s storeUsers) setDisabled(ctx context.Context, name string, disabled bool) error {
	if disabled {
		return s.svc.Disable(ctx, s.meta, name)
	}
	return s.svc.Enable(ctx, s.meta, name)
}

// serverUsers changes users through the server's user endpoints (admin).
type serverUsers struct{ r *remote }

func (s serverUsers) add(ctx context.Context, name, email, password string, roles []string) error {
	if email == "" {
		return usageError("users add: the server's API wants an e-mail address: give -email")
	}
	return s.r.call(ctx, http.MethodPost, "/users",
		map[string]any{"username": name, "email": email, "password": password, "roles": nonNilRoles(roles)}, nil)
}

func (s serverUsers) grant(ctx context.Context, name, wallet string, perms []string) error {
	return s.r.call(ctx, http.MethodPut, "/users/"+url.PathEscape(name)+"/wallets/"+url.PathEscape(wallet),
		map[string]any{"permissions": perms}, nil)
}

func (s serverUsers) revoke(ctx context.Context, name, wallet string) error {
	return s.r.call(ctx, http.MethodDelete, "/users/"+url.PathEscape(name)+"/wallets/"+url.PathEscape(wallet), nil, nil)
}

func (s serverUsers) setDisabled(ctx context.Context, name string, disabled bool) error {
	action := "/enable"
	if disabled {
		action = "/disable"
	}
	return s.r.call(ctx, http.MethodPost, "/users/"+url.PathEscape(name)+action, nil, nil)
}

func nonNilRoles(roles []string) []string {
	if roles == nil {
		return []string{}
	}
	return roles
}

// readPassword returns the first line of file when one is named, else
// asks twice without echo when standard input is a terminal, else reads
// the first line of standard input. It never waits on a closed input, and
// an empty password is an error.
func readPassword(file string) (string, error) {
	var line, from string
	switch {
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("password file: %w", err)
		}
		line, _, _ = strings.Cut(string(b), "\n")
		from = file
	case term.IsTerminal(int(os.Stdin.Fd())):
		p, err := promptPassword("password: ")
		if err != nil {
			return "", err
		}
		again, err := promptPassword("again: ")
		if err != nil {
			return "", err
		}
		if again != p {
			return "", errors.New("the two passwords differ")
		}
		line, from = p, "the prompt"
	default:
		var err error
		line, err = bufio.NewReader(os.Stdin).ReadString('\n')
		if err != nil && line == "" {
			return "", errors.New("no password on standard input: pipe one, or give -password-file")
		}
		from = "standard input"
	}
	if line = strings.TrimRight(line, "\r\n"); line == "" {
		return "", fmt.Errorf("the password from %s is empty", from)
	}
	return line, nil
}

// promptPassword asks on standard error and reads from the terminal on
// standard input without echo.
func promptPassword(prompt string) (string, error) {
	fmt.Fprint(os.Stderr, prompt)
	b, err := term.ReadPassword(int(os.Stdin.Fd()))
	fmt.Fprintln(os.Stderr)
	if err != nil {
		return "", fmt.Errorf("reading the password: %w", err)
	}
	return string(b), nil
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// configShow prints the effective configuration, secrets redacted.
func configShow(args []string) error {
	cfg, _, err := loadConfig("config show", args)
	if err != nil {
		return err
	}
	out, err := yaml.Marshal(cfg)
	if err != nil {
		return err
	}
	fmt.Print(string(out))
	return nil
}
