package main

import (
	"bytes"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// TestKeyFileCreatedOnceWithMode0600: concurrent first starts (a CLI and a
// server on one data directory) agree on one key, kept with mode 0600 and
// read back unchanged; a configured secret wins.
func TestKeyFileCreatedOnceWithMode0600(t *testing.T) {
	cfg := &Config{DataDir: filepath.Join(t.TempDir(), "data")}
	keys := make([][]byte, 8)
	var wg sync.WaitGroup
	for i := range keys {
		wg.Go(func() {
			k, err := keyFile(cfg, "seal.key", "")
			if err != nil {
				t.Error(err)
			}
			keys[i] = k
		})
	}
	wg.Wait()
	for _, k := range keys[1:] {
		if len(k) != 64 || !bytes.Equal(k, keys[0]) {
			t.Fatalf("keys differ: %q %q", k, keys[0])
		}
	}
	st, err := os.Stat(filepath.Join(cfg.DataDir, "seal.key"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("seal.key: %v %v", st, err)
	}
	if again, err := keyFile(cfg, "seal.key", ""); err != nil || !bytes.Equal(again, keys[0]) {
		t.Fatalf("read back %q %v", again, err)
	}
	if k, _ := keyFile(cfg, "seal.key", "configured-secret"); string(k) != "configured-secret" {
		t.Fatalf("configured secret ignored: %q", k)
	}
	entries, _ := os.ReadDir(cfg.DataDir)
	if len(entries) != 1 {
		t.Fatalf("data dir holds %d entries, want only seal.key", len(entries))
	}
}
