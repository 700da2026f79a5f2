package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/coinledger/coinledger/app/users"
	"github.com/coinledger/coinledger/domain/identity/graphene"
	"github.com/coinledger/coinledger/eventstore"
	"gopkg.in/yaml.v3"
)

const usersUsage = `usage: coinledger users <command>

  add NAME [-email E] [-role R]...   register a user; the password is read from standard input
  grant NAME WALLET PERM[,PERM...]   grant permissions on a wallet
  revoke NAME WALLET                 revoke the user's grant on a wallet
  hash-password                      read a password from standard input, print its bcrypt hash
                                     (for password_hash in the configuration file)
  disable NAME                       disable a user: every token, refresh token, API key and
                                     websocket of the user ends at once; logins are refused
  enable NAME                        enable a disabled user (it logs in again; its old
                                     credentials stay revoked)
  import-graphene FILE -wallet W [-wildcard-writes]
                                     import a Graphene api-access.json permission map; the *
                                     entry becomes user "anonymous", read-only unless
                                     -wildcard-writes grants what its API sets map to

They write to the event store the configuration names. The embedded store is
locked by a running server: stop it first, or use the HTTP API.
`

// usersCmd runs the users subcommands.
func usersCmd(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return usageError("users: no command given\n" + usersUsage)
	}
	cmd, args := args[0], args[1:]
	if cmd == "hash-password" {
		password, err := readPassword()
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
	// Flags may follow the positional arguments.
	var pos []string
	for len(args) > 0 {
		if err := fs.Parse(args); err != nil {
			return usageError(err.Error())
		}
		if fs.NArg() == 0 {
			break
		}
		pos, args = append(pos, fs.Arg(0)), fs.Args()[1:]
	}
	cfg, err := loadConfigFile("users", *configPath)
	if err != nil {
		return err
	}
	store, closeStore, err := openEventStore(ctx, cfg.EventStore.Reveal())
	if err != nil {
		return err
	}
	defer closeStore()
	svc, err := usersService(cfg, store, nil, nil, nil)
	if err != nil {
		return err
	}
	meta := eventstore.Metadata{Actor: "cli:" + os.Getenv("USER")}
	need := func(n int) error {
		if len(pos) != n {
			return usageError(fmt.Sprintf("users %s: want %d arguments, got %d\n%s", cmd, n, len(pos), usersUsage))
		}
		return nil
	}
	switch cmd {
	case "add":
		if err := need(1); err != nil {
			return err
		}
		password, err := readPassword()
		if err != nil {
			return err
		}
		if err := svc.Register(ctx, meta, pos[0], *email, password, roles); err != nil {
			return err
		}
		fmt.Printf("user %s added\n", pos[0])
	case "grant":
		if err := need(3); err != nil {
			return err
		}
		if err := svc.Grant(ctx, meta, pos[0], pos[1], strings.Split(pos[2], ",")); err != nil {
			return err
		}
		fmt.Printf("granted %s on %s to %s\n", pos[2], pos[1], pos[0])
	case "revoke":
		if err := need(2); err != nil {
			return err
		}
		if err := svc.Revoke(ctx, meta, pos[0], pos[1]); err != nil {
			return err
		}
		fmt.Printf("revoked %s's grant on %s\n", pos[0], pos[1])
	case "disable", "enable":
		if err := need(1); err != nil {
			return err
		}
		change, done := svc.Disable, "disabled"
		if cmd == "enable" {
			change, done = svc.Enable, "enabled"
		}
		if err := change(ctx, meta, pos[0]); err != nil {
			return err
		}
		fmt.Printf("user %s %s\n", pos[0], done)
	case "import-graphene":
		if err := need(1); err != nil {
			return err
		}
		if *wallet == "" {
			return usageError("users import-graphene: -wallet is required")
		}
		data, err := os.ReadFile(pos[0])
		if err != nil {
			return err
		}
		m, err := graphene.Parse(data)
		if err != nil {
			return fmt.Errorf("%s: %w", pos[0], err)
		}
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
	default:
		return usageError(fmt.Sprintf("users: unknown command %q\n%s", cmd, usersUsage))
	}
	return nil
}

// readPassword reads one line from standard input (no echo handling: pipe it).
func readPassword() (string, error) {
	line, err := bufio.NewReader(os.Stdin).ReadString('\n')
	if err != nil && line == "" {
		return "", errors.New("reading the password from standard input: " + err.Error())
	}
	return strings.TrimRight(line, "\r\n"), nil
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
