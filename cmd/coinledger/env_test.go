package main

import (
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
)

var envName = regexp.MustCompile(`COINLEDGER_[A-Z0-9_]*[A-Z0-9]`)

// TestEnvVarsListEveryVariableRead: every COINLEDGER_* name in the
// module's non-test code is in envVars, and README.md's configuration
// table has a row for each.
func TestEnvVarsListEveryVariableRead(t *testing.T) {
	root := filepath.Join("..", "..")
	read := map[string]string{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, name := range envName.FindAllString(string(b), -1) {
			if !strings.HasPrefix(name+"_", envTestPrefix) {
				read[name] = path
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for name, path := range read {
		if !slices.Contains(envVars, name) {
			t.Errorf("%s reads %s, which envVars (env.go) does not list", path, name)
		}
	}
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range envVars {
		if _, ok := read[name]; !ok {
			t.Errorf("envVars lists %s, which no code reads", name)
		}
		if !strings.Contains(string(readme), "\n| `"+name+"`") {
			t.Errorf("README.md's configuration table has no row for %s", name)
		}
	}
}

func TestUnknownEnv(t *testing.T) {
	unknown, closest := unknownEnv([]string{"COINLEDGER_LISTEN=:1", "COINLEDGER_LISTN=:2", "COINLEDGER_TEST_POSTGRES_URL=x",
		"PATH=/bin", "COINLEDGER_FROBNICATE=1", "COINLEDGER_DATADIR=/d"})
	if want := []string{"COINLEDGER_DATADIR", "COINLEDGER_FROBNICATE", "COINLEDGER_LISTN"}; !reflect.DeepEqual(unknown, want) {
		t.Fatalf("unknown = %v, want %v", unknown, want)
	}
	want := map[string]string{"COINLEDGER_LISTN": "COINLEDGER_LISTEN", "COINLEDGER_DATADIR": "COINLEDGER_DATA_DIR"}
	if !reflect.DeepEqual(closest, want) {
		t.Fatalf("closest = %v, want %v", closest, want)
	}
}
