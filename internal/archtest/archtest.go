// Package archtest checks the layering of the module in go test: imports
// point inward (rules), and stream names and event type names are spelled
// only by the package that owns them (names). Its tests run the checks over
// the real tree with go list and go/parser; no server is needed.
package archtest

import (
	"fmt"
	"go/ast"
	"go/token"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Rule forbids the packages under From to import the packages under any of
// Deny, except those under Allow. Paths are relative to the module; "" in
// Deny stands for every package of the module.
type Rule struct {
	From  string
	Deny  []string
	Allow []string
	Why   string
}

// Rules is the import table of the module (non-test imports).
var Rules = []Rule{
	{From: "domain", Deny: []string{""}, Allow: []string{"domain"},
		Why: "domain imports nothing of ours but other domain packages"},
	{From: "eventstore", Deny: []string{"adapters", "cmd", "app", "http", "projections"},
		Why: "the event store knows no adapter, use case, transport or read model"},
	{From: "projections", Deny: []string{"adapters", "cmd"},
		Why: "read models do not import adapters or the wiring"},
	{From: "app", Deny: []string{"adapters", "cmd", "http"},
		Why: "the app layer declares ports (adapters implement them) and knows no transport"},
	{From: "http", Deny: []string{"adapters", "cmd"},
		Why: "http uses app ports; only cmd wires concrete adapters"},
}

// under reports whether path is prefix or a package below it ("" is every
// path).
func under(path, prefix string) bool {
	return prefix == "" || path == prefix || strings.HasPrefix(path, prefix+"/")
}

// Violations checks imports (package → its imports, full import paths) of
// module against rules and returns one line per forbidden edge, sorted.
// Imports outside module are ignored.
func Violations(module string, imports map[string][]string, rules []Rule) []string {
	var out []string
	for pkg, deps := range imports {
		from, ok := strings.CutPrefix(pkg, module+"/")
		if !ok {
			continue
		}
		for _, dep := range deps {
			to, ok := strings.CutPrefix(dep, module+"/")
			if !ok {
				continue
			}
			for _, r := range rules {
				if under(from, r.From) && denied(to, r) {
					out = append(out, fmt.Sprintf("%s imports %s: %s", from, to, r.Why))
				}
			}
		}
	}
	sort.Strings(out)
	return out
}

func denied(to string, r Rule) bool {
	for _, a := range r.Allow {
		if under(to, a) {
			return false
		}
	}
	for _, d := range r.Deny {
		if under(to, d) {
			return true
		}
	}
	return false
}

// Prefixes are the stream-name and event-type prefixes and the package
// that owns (declares) each; no other package spells them.
var Prefixes = map[string]string{
	"wallet-":            "domain/ledger",
	"user-":              "domain/identity",
	"alert-":             "domain/alerts",
	"price-":             "domain/prices",
	"delivery-":          "app/outbox",
	"hook-":              "domain/hook",
	"hooks.":             "domain/hook",
	"ledger.":            "domain/ledger",
	"ledger.deposit_":    "domain/ledger",
	"ledger.withdrawal_": "domain/ledger",
	"alerts.":            "domain/alerts",
	"audit-":             "domain/audit",
	"audit.":             "domain/audit",
}

// eventType is the form of an event type name ("ledger.deposit_seen").
var eventType = regexp.MustCompile(`^[a-z]+\.[a-z_]+$`)

// NameViolations checks the parsed non-test files of each package (path
// relative to the module → files): a string literal equal to one of
// prefixes, or to an event type name declared by another package (a
// constant named Type... whose value looks like "pkg.event_name"), is a
// violation outside its owner, and so is an event type name declared twice.
func NameViolations(fset *token.FileSet, pkgs map[string][]*ast.File, prefixes map[string]string) []string {
	owners := map[string]string{}
	for lit, owner := range prefixes {
		owners[lit] = owner
	}
	var out []string
	declared := map[string]string{}
	for pkg, files := range pkgs {
		for _, f := range files {
			for _, d := range f.Decls {
				g, ok := d.(*ast.GenDecl)
				if !ok || g.Tok != token.CONST {
					continue
				}
				for _, s := range g.Specs {
					vs := s.(*ast.ValueSpec)
					for i, name := range vs.Names {
						if i >= len(vs.Values) || !strings.HasPrefix(name.Name, "Type") {
							continue
						}
						v, ok := stringLit(vs.Values[i])
						if !ok || !eventType.MatchString(v) {
							continue
						}
						if prev, dup := declared[v]; dup && prev != pkg {
							out = append(out, fmt.Sprintf("event type %q declared by %s and %s", v, min(prev, pkg), max(prev, pkg)))
							continue
						}
						declared[v] = pkg
						if _, ok := owners[v]; !ok {
							owners[v] = pkg
						}
					}
				}
			}
		}
	}
	for pkg, files := range pkgs {
		for _, f := range files {
			ast.Inspect(f, func(n ast.Node) bool {
				e, ok := n.(ast.Expr)
				if !ok {
					return true
				}
				v, ok := stringLit(e)
				if !ok {
					return true
				}
				if owner, ok := owners[v]; ok && owner != pkg {
					out = append(out, fmt.Sprintf("%s: %q spelled outside its owner %s", fset.Position(e.Pos()), v, owner))
				}
				return true
			})
		}
	}
	sort.Strings(out)
	return out
}

func stringLit(e ast.Expr) (string, bool) {
	lit, ok := e.(*ast.BasicLit)
	if !ok || lit.Kind != token.STRING {
		return "", false
	}
	v, err := strconv.Unquote(lit.Value)
	return v, err == nil
}
