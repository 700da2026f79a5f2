package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/coinledger/coinledger/app/audit"
)

// auditKeyPath is the keyring file cfg names (default
// DATA_DIR/audit-keys.json).
func auditKeyPath(cfg *Config) string {
	if cfg.Audit.KeyFile != "" {
		return cfg.Audit.KeyFile
	}
	return filepath.Join(cfg.DataDir, "audit-keys.json")
}

// readKeyring reads the keyring file at path.
func readKeyring(path string) (*audit.Keyring, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	k, err := audit.ParseKeyring(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

// openKeyring reads the keyring file at path, creating it (mode 0600,
// synced, with a fresh key and salt secret) when there is none; of two
// processes creating it at once, both use the one that won.
func openKeyring(path string) (*audit.Keyring, error) {
	k, err := readKeyring(path)
	if !errors.Is(err, os.ErrNotExist) {
		return k, err
	}
	fresh, err := audit.NewKeyring(nil, time.Now())
	if err != nil {
		return nil, err
	}
	b, err := audit.MarshalKeyring(fresh)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, err
	}
	created, err := createSynced(path, b)
	if err != nil {
		return nil, fmt.Errorf("write %s: %w", path, err)
	}
	if !created {
		return readKeyring(path)
	}
	return fresh, nil
}

// rotateKeyring replaces the keyring at path with one that signs with a
// fresh key and keeps the old one's public half (audit.Keyring.Rotate).
func rotateKeyring(path string) (old, rotated *audit.Keyring, err error) {
	if old, err = openKeyring(path); err != nil {
		return nil, nil, err
	}
	if rotated, err = old.Rotate(nil, time.Now()); err != nil {
		return nil, nil, err
	}
	b, err := audit.MarshalKeyring(rotated)
	if err != nil {
		return nil, nil, err
	}
	if err := replaceSynced(path, b); err != nil {
		return nil, nil, fmt.Errorf("write %s: %w", path, err)
	}
	return old, rotated, nil
}

// keyringFile is the keyring of a running service: the file at path, read
// again when it changes (a rotation by `coinledger audit rotate-key`
// applies to the next checkpoint without a restart).
type keyringFile struct {
	path string

	mu      sync.Mutex
	k       *audit.Keyring
	modTime time.Time
	size    int64
}

// Keys returns the keyring, reading the file when it changed since the
// last read.
func (f *keyringFile) Keys() (*audit.Keyring, error) {
	st, err := os.Stat(f.path)
	if err != nil {
		return nil, fmt.Errorf("audit keys: %w", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.k != nil && st.ModTime().Equal(f.modTime) && st.Size() == f.size {
		return f.k, nil
	}
	k, err := readKeyring(f.path)
	if err != nil {
		return nil, fmt.Errorf("audit keys: %w", err)
	}
	f.k, f.modTime, f.size = k, st.ModTime(), st.Size()
	return k, nil
}

// auditKeys opens (creating at first start) the keyring file cfg names and
// returns its reader.
func auditKeys(cfg *Config) (func() (*audit.Keyring, error), error) {
	path := auditKeyPath(cfg)
	if _, err := openKeyring(path); err != nil {
		return nil, fmt.Errorf("audit keys: %w", err)
	}
	f := &keyringFile{path: path}
	return f.Keys, nil
}
