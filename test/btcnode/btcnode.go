// Package btcnode starts a real btcd and btcwallet on simnet for tests: a
// node with a wallet that speaks bitcoind's JSON-RPC, and a key of the
// harness's own that mines blocks and pays into the wallet from outside.
//
//	node := btcnode.Start(t)                 // skips (or fails under CI) without the binaries
//	node.FundWallet(t, 10*btcnode.BTC)       // confirmed coins the wallet can send
//	txid := node.Pay(t, walletAddress, 5000) // a deposit: in the mempool, seen by the wallet
//	node.Mine(t, 1)                          // confirmed; the wallet has caught up
//
// Point the code under test at WalletURL (the wallet's RPC, which also
// forwards chain calls to btcd). StopWallet and StartWallet take the wallet
// down and bring it back on the same port.
//
// Coins mined to a key imported into btcwallet stay watch-only, so the
// harness keeps its own key: btcd mines to it, and Pay signs raw
// transactions spending its mature coinbase outputs (simnet coinbases
// mature after 100 blocks; Start mines InitialBlocks).
//
// The binaries come from PATH (test/servers.sh installs them). Creating a
// btcwallet wallet takes 2–13 s, so the first Start keeps a template
// wallet.db under os.TempDir()/coinledger-btcwallet, one per btcwallet
// build, and later Starts copy it.
//
// Measured on a 2-core build machine (noisy; ×2–3 when other tests run):
// template creation 1.9 s; Start 2.1–2.8 s with the template (btcd answers
// in 0.2 s; btcwallet opens and unlocks its wallet in 1.8 s, two scrypt
// runs; mining 120 blocks and the wallet's catching up 0.1 s); Pay 15–40
// ms; Mine(1) 5–30 ms; StopWallet 3 ms; StartWallet 2 s, 4 s when blocks
// were mined meanwhile (btcwallet rescans them for addresses of its seed
// and answers nothing that writes until done); cleanup 0.1–0.5 s.
package btcnode

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/btcsuite/btcd/btcutil"
	"github.com/btcsuite/btcd/chaincfg"
	"github.com/btcsuite/btcd/txscript"
)

// BTC is one bitcoin in satoshis, the unit of every amount here.
const BTC = 100_000_000

// InitialBlocks is how many blocks Start mines to the harness's key: the
// first 21 coinbases (1050 BTC) are mature at once.
const InitialBlocks = 120

// WalletPassphrase is the private passphrase of the wallet (btcwallet
// --createtemp's). Start unlocks the wallet with it, without a time limit.
const WalletPassphrase = "password"

// readyTimeout bounds waiting for a server to answer or to catch up (a
// loaded 2-core machine running the whole suite needs more than seconds).
const readyTimeout = 90 * time.Second

// Node is a running btcd with a btcwallet on simnet. Its methods may be
// called from several goroutines; they are serialized.
type Node struct {
	dir        string // everything of this node: HOME, data, logs
	btcdBin    string
	walletBin  string
	btcdPort   int
	walletPort int
	user, pass string
	http       *http.Client
	btcdRPC    *rpcClient
	walletRPC  *rpcClient
	params     *chaincfg.Params

	key     *btcec.PrivateKey
	script  []byte // P2PKH output script of key
	address string // simnet address of key

	mu     sync.Mutex // guards what follows and serializes the methods
	btcd   *proc
	wallet *proc // nil while stopped
	coins  []coin
}

// Start starts btcd and btcwallet on free ports of 127.0.0.1, mines
// InitialBlocks to the harness's key and returns once the wallet is
// unlocked and has caught up with btcd. Both stop when the test ends; if it
// failed, the last lines of their logs are logged and their directory is
// kept.
//
// When btcd or btcwallet is not on PATH, Start skips the test, or fails it
// when the CI environment variable is set.
func Start(tb testing.TB) *Node {
	tb.Helper()
	began := time.Now()
	btcdBin, walletBin := binaries(tb)
	dir, err := os.MkdirTemp("", "btcnode-")
	if err != nil {
		tb.Fatalf("btcnode: %v", err)
	}
	transport := &http.Transport{}
	n := &Node{
		dir:       dir,
		btcdBin:   btcdBin,
		walletBin: walletBin,
		user:      randomHex(8),
		pass:      randomHex(16),
		http:      &http.Client{Transport: transport},
		params:    &chaincfg.SimNetParams,
	}
	tb.Cleanup(func() {
		n.stop(tb)
		transport.CloseIdleConnections()
	})
	if err := n.init(); err != nil {
		tb.Fatalf("btcnode: %v", err)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.startBtcd(); err != nil {
		tb.Fatalf("btcnode: %v", err)
	}
	// The wallet is ready before the first block: at its first start
	// btcwallet scans the existing blocks for its addresses (2 s for 120
	// blocks, blocking writes), while new blocks cost it nothing.
	if err := n.startWallet(); err != nil {
		tb.Fatalf("btcnode: %v", err)
	}
	if err := n.waitWallet(); err != nil {
		tb.Fatalf("btcnode: %v", err)
	}
	if err := n.generate(InitialBlocks); err != nil {
		tb.Fatalf("btcnode: %v", err)
	}
	if err := n.waitSynced(); err != nil {
		tb.Fatalf("btcnode: %v", err)
	}
	tb.Logf("btcnode: btcd on 127.0.0.1:%d, btcwallet on 127.0.0.1:%d, ready in %s (%s)",
		n.btcdPort, n.walletPort, time.Since(began).Round(time.Millisecond), dir)
	return n
}

// binaries finds btcd and btcwallet on PATH.
func binaries(tb testing.TB) (btcd, wallet string) {
	tb.Helper()
	btcd, err1 := exec.LookPath("btcd")
	wallet, err2 := exec.LookPath("btcwallet")
	if err := errors.Join(err1, err2); err != nil {
		const msg = "btcnode: btcd and btcwallet must be on PATH; install them with test/servers.sh " +
			"(eval \"$(test/servers.sh start)\"): %v"
		if os.Getenv("CI") != "" {
			tb.Fatalf(msg, err)
		}
		tb.Skipf(msg, err)
	}
	return btcd, wallet
}

// init makes the key, picks the ports and puts a wallet in place.
func (n *Node) init() error {
	key, err := btcec.NewPrivateKey()
	if err != nil {
		return err
	}
	n.key = key
	addr, err := btcutil.NewAddressPubKeyHash(btcutil.Hash160(key.PubKey().SerializeCompressed()), n.params)
	if err != nil {
		return err
	}
	n.address = addr.EncodeAddress()
	if n.script, err = txscript.PayToAddrScript(addr); err != nil {
		return err
	}
	if n.btcdPort, err = freePort(); err != nil {
		return err
	}
	if n.walletPort, err = freePort(); err != nil {
		return err
	}
	base := func(port int) string { return "http://127.0.0.1:" + strconv.Itoa(port) }
	n.btcdRPC = &rpcClient{url: base(n.btcdPort), user: n.user, pass: n.pass, http: n.http}
	n.walletRPC = &rpcClient{url: base(n.walletPort), user: n.user, pass: n.pass, http: n.http}
	for _, d := range []string{"home", "logs", filepath.Join("wallet", "simnet")} {
		if err := os.MkdirAll(filepath.Join(n.dir, d), 0o700); err != nil {
			return err
		}
	}
	tmpl, err := walletTemplate(n.walletBin)
	if err != nil {
		return err
	}
	if err := copyFile(filepath.Join(n.dir, "wallet", "simnet", "wallet.db"), tmpl); err != nil {
		return fmt.Errorf("copy wallet template: %w", err)
	}
	return nil
}

// startBtcd starts btcd and waits until it answers.
func (n *Node) startBtcd() error {
	p, err := startProc("btcd", n.btcdBin, filepath.Join(n.dir, "home"), filepath.Join(n.dir, "btcd.log"),
		"--simnet", "--txindex", "--notls", "--nolisten",
		"--rpclisten=127.0.0.1:"+strconv.Itoa(n.btcdPort), "--rpcuser="+n.user, "--rpcpass="+n.pass,
		"--datadir="+filepath.Join(n.dir, "btcd"), "--logdir="+filepath.Join(n.dir, "logs", "btcd"),
		"--miningaddr="+n.address)
	if err != nil {
		return err
	}
	n.btcd = p
	return n.poll(p, "btcd to answer", func(ctx context.Context) (bool, error) {
		return n.btcdRPC.call(ctx, "getblockcount", nil) == nil, nil
	})
}

// startWallet starts btcwallet on the node's wallet port; it does not wait.
func (n *Node) startWallet() error {
	p, err := startProc("btcwallet", n.walletBin, filepath.Join(n.dir, "home"), filepath.Join(n.dir, "btcwallet.log"),
		"--simnet", "--appdata="+filepath.Join(n.dir, "wallet"), "--logdir="+filepath.Join(n.dir, "logs", "btcwallet"),
		"--rpcconnect=127.0.0.1:"+strconv.Itoa(n.btcdPort), "--noclienttls", "--noservertls",
		"--rpclisten=127.0.0.1:"+strconv.Itoa(n.walletPort), "--username="+n.user, "--password="+n.pass,
		// The code under test keeps asking while the wallet starts (its
		// recovery scan blocks RPCs): more than the default 10 waiting
		// requests must not get the harness's own refused.
		"--rpcmaxclients=200")
	if err != nil {
		return err
	}
	n.wallet = p
	return nil
}

// waitWallet waits until the wallet is loaded, unlocks it and waits until
// it has caught up with btcd and can write.
func (n *Node) waitWallet() error {
	err := n.poll(n.wallet, "btcwallet to unlock", func(ctx context.Context) (bool, error) {
		return n.walletRPC.call(ctx, "walletpassphrase", nil, WalletPassphrase, 0) == nil, nil
	})
	if err != nil {
		return err
	}
	if err := n.waitSynced(); err != nil {
		return err
	}
	// At every start btcwallet scans the blocks it missed for addresses
	// of its seed ("recovery", 2 s even for a few blocks), holding its
	// database: a new address is only handed out after that.
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	return n.walletRPC.call(ctx, "getnewaddress", nil)
}

// waitSynced waits until the wallet's best block is btcd's.
func (n *Node) waitSynced() error {
	var height int64
	if err := n.btcdRPC.call(context.Background(), "getblockcount", &height); err != nil {
		return err
	}
	return n.poll(n.wallet, fmt.Sprintf("btcwallet to reach block %d", height), func(ctx context.Context) (bool, error) {
		var best struct {
			Height int64 `json:"height"`
		}
		err := n.walletRPC.call(ctx, "getbestblock", &best)
		return err == nil && best.Height >= height, nil
	})
}

// poll calls done every 20 ms until it reports true, p exits or
// readyTimeout passes.
func (n *Node) poll(p *proc, what string, done func(ctx context.Context) (bool, error)) error {
	deadline := time.Now().Add(readyTimeout)
	pause := 20 * time.Millisecond
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		ok, err := done(ctx)
		cancel()
		if ok || err != nil {
			return err
		}
		if exited, werr := p.exited(); exited {
			return fmt.Errorf("waiting for %s: %s exited (%v); last lines:\n%s", what, p.name, werr, p.tail(20))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("waiting for %s: gave up after %s; last lines of %s:\n%s", what, readyTimeout, p.name, p.tail(20))
		}
		time.Sleep(pause)
		pause = min(2*pause, 500*time.Millisecond) // a blocked server is not flooded
	}
}

// stop stops both servers; on failure it logs their last lines and keeps
// their directory.
func (n *Node) stop(tb testing.TB) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, p := range []*proc{n.wallet, n.btcd} {
		if p != nil {
			p.stop(cleanupGrace)
		}
	}
	if !tb.Failed() {
		os.RemoveAll(n.dir)
		return
	}
	for _, p := range []*proc{n.wallet, n.btcd} {
		if p != nil {
			tb.Logf("btcnode: last lines of %s (%s):\n%s", p.name, p.log, p.tail(40))
		}
	}
	tb.Logf("btcnode: data and logs kept in %s", n.dir)
}

// WalletURL is the URL of the wallet's JSON-RPC with its credentials,
// http://user:pass@127.0.0.1:port. btcwallet forwards the calls it does not
// know (getrawtransaction, sendrawtransaction, ...) to btcd.
func (n *Node) WalletURL() string {
	return fmt.Sprintf("http://%s:%s@127.0.0.1:%d", n.user, n.pass, n.walletPort)
}

// BtcdURL is the URL of btcd's JSON-RPC with its credentials.
func (n *Node) BtcdURL() string {
	return fmt.Sprintf("http://%s:%s@127.0.0.1:%d", n.user, n.pass, n.btcdPort)
}

// StopWallet stops btcwallet (SIGTERM), as if its machine went down; btcd
// keeps running and Mine keeps working. Calls to WalletURL are refused
// until StartWallet.
func (n *Node) StopWallet(tb testing.TB) {
	tb.Helper()
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.wallet != nil {
		n.wallet.stop(stopGrace)
		n.wallet = nil
	}
}

// StartWallet starts btcwallet again on the same port and with the same
// wallet, and returns once it is unlocked and has caught up with btcd. It
// does nothing when the wallet runs.
func (n *Node) StartWallet(tb testing.TB) {
	tb.Helper()
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.wallet != nil {
		return
	}
	if err := n.startWallet(); err != nil {
		tb.Fatalf("btcnode: %v", err)
	}
	if err := n.waitWallet(); err != nil {
		tb.Fatalf("btcnode: %v", err)
	}
}

// RestartWallet is StopWallet then StartWallet.
func (n *Node) RestartWallet(tb testing.TB) {
	tb.Helper()
	n.StopWallet(tb)
	n.StartWallet(tb)
}

// WalletRPC calls the wallet's JSON-RPC and returns the result; any error
// fails the test.
func (n *Node) WalletRPC(tb testing.TB, method string, params ...any) json.RawMessage {
	tb.Helper()
	var res json.RawMessage
	if err := n.walletRPC.call(context.Background(), method, &res, params...); err != nil {
		tb.Fatalf("btcnode: wallet %v", err)
	}
	return res
}

// BtcdRPC calls btcd's JSON-RPC and returns the result; any error fails the
// test.
func (n *Node) BtcdRPC(tb testing.TB, method string, params ...any) json.RawMessage {
	tb.Helper()
	var res json.RawMessage
	if err := n.btcdRPC.call(context.Background(), method, &res, params...); err != nil {
		tb.Fatalf("btcnode: btcd %v", err)
	}
	return res
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
