package chainsync

// This file is the port to a coin's node, declared here where it is used:
// one Backend per coin, implemented by the adapters under adapters/chain
// (bitcoind and its forks, block.io, the simulated null chain). Backends
// speak in minor units and the documented bitcoind fields; each keeps its
// node's quirks to itself.

import (
	"context"
	"errors"
)

// Errors every backend reports through errors.Is.
var (
	// ErrTxNotFound: the node does not know the transaction (never seen, or
	// dropped from its mempool after a reorg or double spend).
	ErrTxNotFound = errors.New("chain: transaction not found")
	// ErrUnavailable: the node could not be asked (refused, down, timed out
	// before a request was sent). Nothing happened on the node: retry later.
	ErrUnavailable = errors.New("chain: node unavailable")
	// ErrRejected: the node refused a send and will not carry it out
	// (invalid address, insufficient funds, amount too small). Nothing was
	// sent: the withdrawal fails.
	ErrRejected = errors.New("chain: send rejected")
	// ErrAmbiguous: a send was handed to the node but its outcome is not
	// known (timeout or broken connection after the request was written).
	// It may be on the network: never send it again automatically.
	ErrAmbiguous = errors.New("chain: send outcome unknown")
)

// Output is one output of a transaction that pays an address of the
// backend's wallet.
type Output struct {
	Vout    uint32
	Address string
	Amount  int64 // minor units, positive
}

// Tx is what the node knows of a transaction now.
type Tx struct {
	TxID string
	// Received lists the outputs paying the wallet's addresses (none for a
	// transaction the wallet only sent).
	Received []Output
	// Confirmations: 0 in the mempool, n in a block n-1 deep, negative
	// when the transaction conflicts with one in the chain (double spent,
	// bitcoind's convention).
	Confirmations int
	// BlockHash of the block holding the transaction, empty when unmined.
	BlockHash string
	// Fee paid by the wallet (minor units, zero or positive) for a
	// transaction it sent; zero otherwise.
	Fee int64
}

// Sent is a broadcast transaction.
type Sent struct {
	TxID string
	Fee  int64 // minor units paid to the network
}

// Since is the answer to "what happened since block X".
type Since struct {
	// TxIDs touching the wallet since the block, each once.
	TxIDs []string
	// LastBlock is the hash to ask from next time.
	LastBlock string
}

// Backend is one coin's node (the wiring knows which coin). Safe for
// concurrent use.
type Backend interface {
	// NewAddress returns a fresh receiving address of the wallet.
	NewAddress(ctx context.Context) (string, error)
	// Transaction reports what the node knows of txid (ErrTxNotFound).
	Transaction(ctx context.Context, txid string) (Tx, error)
	// Send pays amount minor units to address, out of the amount when
	// subtractFee is set. Errors are ErrUnavailable, ErrRejected or
	// ErrAmbiguous (wrapped), so the caller knows whether it may retry.
	Send(ctx context.Context, address string, amount int64, subtractFee bool) (Sent, error)
	// Height is the height of the node's best block.
	Height(ctx context.Context) (int64, error)
	// SinceBlock lists the wallet's transactions since the block with the
	// given hash (all of them when empty), as bitcoind's listsinceblock.
	SinceBlock(ctx context.Context, blockHash string) (Since, error)
}
