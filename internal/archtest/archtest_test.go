package archtest

import (
	"bytes"
	"encoding/json"
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// listed is what go list tells of one package of the module.
type listed struct {
	ImportPath string
	Dir        string
	GoFiles    []string
	Imports    []string
}

// goList lists every package of the module (non-test files, this GOOS).
func goList(t *testing.T) (module string, pkgs []listed) {
	t.Helper()
	out, err := exec.Command("go", "list", "-m").Output()
	if err != nil {
		t.Fatalf("go list -m: %v", err)
	}
	module = strings.TrimSpace(string(out))
	cmd := exec.Command("go", "list", "-e", "-json=ImportPath,Dir,GoFiles,Imports", module+"/...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err = cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v: %s", err, stderr.String())
	}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p listed
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("go list output: %v", err)
		}
		pkgs = append(pkgs, p)
	}
	if len(pkgs) < 10 {
		t.Fatalf("go list found %d packages of %s, want the whole module", len(pkgs), module)
	}
	return module, pkgs
}

// TestImportRules fails when a package of the module imports against the
// rule table (imports point inward).
func TestImportRules(t *testing.T) {
	module, pkgs := goList(t)
	imports := map[string][]string{}
	for _, p := range pkgs {
		imports[p.ImportPath] = p.Imports
	}
	for _, v := range Violations(module, imports, Rules) {
		t.Error(v)
	}
}

// TestImportRulesCatchPlantedEdge proves the checker fails on wrong-way
// imports: a planted http/api → adapters/chain edge (the one this check
// was written after) and one of each rule, while inward edges pass.
func TestImportRulesCatchPlantedEdge(t *testing.T) {
	const m = "example.com/m"
	tests := []struct {
		from, to string
		bad      bool
	}{
		{"http/api", "adapters/chain", true},
		{"http/api", "adapters/chain/null", true},
		{"app/chainsync", "adapters/chain", true},
		{"app/chainsync", "http/api", true},
		{"app/wallets", "cmd/coinledger", true},
		{"projections/custody", "adapters/secret", true},
		{"domain/ledger", "eventstore", true},
		{"domain/ledger", "app/wallets", true},
		{"domain/identity", "http/auth", true},
		{"eventstore/sqlite", "projections", true},
		{"eventstore", "app/users", true},
		{"eventstore", "http/api", true},
		{"domain/ledger", "domain/money", false},
		{"app/chainsync", "domain/ledger", false},
		{"http/api", "app/chainsync", false},
		{"adapters/chain/null", "app/chainsync", false},
		{"cmd/coinledger", "adapters/chain/null", false},
		{"projections/wallet", "domain/ledger", false},
		{"http/api", "projections/custody", false},
		{"domain/ledger", "example.com/other/adapters", false}, // not of the module
		{"domainx", "adapters/x", false},                       // "domain" is not a prefix of "domainx"
	}
	for _, tt := range tests {
		t.Run(tt.from+"->"+tt.to, func(t *testing.T) {
			to := m + "/" + tt.to
			if strings.Contains(tt.to, ".com/") {
				to = tt.to
			}
			got := Violations(m, map[string][]string{m + "/" + tt.from: {to}}, Rules)
			if bad := len(got) > 0; bad != tt.bad {
				t.Fatalf("violations %q, want bad=%v", got, tt.bad)
			}
		})
	}
}

// parsePkgs parses the non-test files of pkgs (relative path → files).
func parsePkgs(t *testing.T, module string, pkgs []listed) (*token.FileSet, map[string][]*ast.File) {
	t.Helper()
	fset := token.NewFileSet()
	out := map[string][]*ast.File{}
	for _, p := range pkgs {
		rel, ok := strings.CutPrefix(p.ImportPath, module+"/")
		if !ok {
			rel = ""
		}
		for _, name := range p.GoFiles {
			f, err := parser.ParseFile(fset, filepath.Join(p.Dir, name), nil, parser.SkipObjectResolution)
			if err != nil {
				t.Fatal(err)
			}
			out[rel] = append(out[rel], f)
		}
	}
	return fset, out
}

// TestNamesDeclaredByOwner fails when a stream-name or event-type prefix,
// or an event type name, is spelled outside the package that owns it.
func TestNamesDeclaredByOwner(t *testing.T) {
	module, pkgs := goList(t)
	fset, files := parsePkgs(t, module, pkgs)
	delete(files, "internal/archtest") // its table spells every prefix
	for _, v := range NameViolations(fset, files, Prefixes) {
		t.Error(v)
	}
}

// TestNamesCatchPlanted proves the name check fails on planted copies of
// an owner's names.
func TestNamesCatchPlanted(t *testing.T) {
	const owner = `package ledger
const StreamPrefix = "wallet-"
const (
	TypeDepositSeen = "ledger.deposit_seen"
	TypeWalletLocked = "ledger.wallet_locked"
	TypeJSON = "application/json" // not an event type name
)`
	tests := []struct {
		name, src string
		bad       bool
	}{
		{"stream prefix", `package ws; const walletStreamPrefix = "wallet-"`, true},
		{"type prefix", `package custody; func f(t string) bool { return t[:15] == "ledger.deposit_" }`, true},
		{"event type", `package x; var t = "ledger.wallet_locked"`, true},
		{"event type declared twice", `package x; const TypeLocked = "ledger.wallet_locked"`, true},
		{"longer literal", `package x; var s = "wallet-main"`, false},
		{"non-event Type constant", `package x; var s = "application/json"`, false},
		{"owner's name by reference", `package x; var s = ledger.StreamPrefix + "main"`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fset := token.NewFileSet()
			parse := func(name, src string) *ast.File {
				f, err := parser.ParseFile(fset, name, src, 0)
				if err != nil {
					t.Fatal(err)
				}
				return f
			}
			pkgs := map[string][]*ast.File{
				"domain/ledger": {parse("ledger.go", owner)},
				"other/x":       {parse("x.go", tt.src)},
			}
			got := NameViolations(fset, pkgs, map[string]string{"wallet-": "domain/ledger", "ledger.deposit_": "domain/ledger"})
			if bad := len(got) > 0; bad != tt.bad {
				t.Fatalf("violations %q, want bad=%v", got, tt.bad)
			}
		})
	}
}
