package btcnode

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// templateTimeout bounds the creation of a wallet template (4–13 s
// measured on slow machines, 2 s on a quiet one).
const templateTimeout = 60 * time.Second

// walletTemplate returns the path of a fresh simnet wallet.db (private
// passphrase "password") made by this btcwallet binary, creating it on
// first use. Templates live under os.TempDir()/coinledger-btcwallet, one
// per btcwallet build (version, size and modification time of the binary),
// and are shared by every test process: creating a wallet takes seconds,
// copying one a millisecond.
func walletTemplate(walletBin string) (string, error) {
	key, err := templateKey(walletBin)
	if err != nil {
		return "", err
	}
	root := filepath.Join(os.TempDir(), "coinledger-btcwallet")
	path := filepath.Join(root, key, "wallet.db")
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", fmt.Errorf("wallet template: %w", err)
	}
	work, err := os.MkdirTemp(root, "creating-")
	if err != nil {
		return "", fmt.Errorf("wallet template: %w", err)
	}
	defer os.RemoveAll(work)
	created, err := createWallet(walletBin, work)
	if err != nil {
		return "", err
	}
	// Rename is atomic: a concurrent creator's template is as good as ours.
	if err := os.Rename(created, path); err != nil {
		return "", fmt.Errorf("wallet template: %w", err)
	}
	return path, nil
}

// templateKey names a btcwallet build.
func templateKey(walletBin string) (string, error) {
	fi, err := os.Stat(walletBin)
	if err != nil {
		return "", fmt.Errorf("wallet template: %w", err)
	}
	version, err := exec.Command(walletBin, "--version").Output()
	if err != nil {
		return "", fmt.Errorf("wallet template: %s --version: %w", walletBin, err)
	}
	h := sha256.New()
	io.WriteString(h, strings.TrimSpace(string(version)))
	io.WriteString(h, strconv.FormatInt(fi.Size(), 10))
	io.WriteString(h, strconv.FormatInt(fi.ModTime().UnixNano(), 10))
	v := strings.Fields(string(version))
	return v[len(v)-1] + "-" + hex.EncodeToString(h.Sum(nil))[:12], nil
}

// createWallet runs btcwallet --createtemp in dir and returns the path of
// the wallet.db it made. btcwallet goes on running after creating the
// wallet (it tries to reach a btcd that is not there); it is stopped as
// soon as it says the wallet exists. Bolt databases survive being stopped
// at any moment.
func createWallet(walletBin, dir string) (string, error) {
	rpcPort, err := freePort()
	if err != nil {
		return "", err
	}
	noBtcd, err := freePort()
	if err != nil {
		return "", err
	}
	app := filepath.Join(dir, "app")
	p, err := startProc("btcwallet --createtemp", walletBin, dir, filepath.Join(dir, "create.log"),
		"--createtemp", "--simnet", "--appdata="+app, "--logdir="+filepath.Join(dir, "logs"),
		"--rpcconnect=127.0.0.1:"+strconv.Itoa(noBtcd), "--noclienttls", "--noservertls",
		"--rpclisten=127.0.0.1:"+strconv.Itoa(rpcPort), "--username=template", "--password=template")
	if err != nil {
		return "", err
	}
	defer p.stop(cleanupGrace)
	deadline := time.Now().Add(templateTimeout)
	for {
		out, _ := os.ReadFile(p.log)
		if strings.Contains(string(out), "created successfully") {
			break
		}
		if ok, err := p.exited(); ok {
			return "", fmt.Errorf("wallet template: btcwallet exited (%v): %s", err, p.tail(20))
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("wallet template: no wallet after %s: %s", templateTimeout, p.tail(20))
		}
		time.Sleep(20 * time.Millisecond)
	}
	p.stop(stopGrace)
	return filepath.Join(app, "simnet", "wallet.db"), nil
}

// copyFile copies src to dst (created with mode 0600).
func copyFile(dst, src string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
