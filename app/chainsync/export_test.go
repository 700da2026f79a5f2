package chainsync

// IndexContents returns copies of what x maps: wallet → coin, address →
// wallet, txid → [wallet, withdrawal id].
func IndexContents(x *Index) (coins, addresses map[string]string, withdrawals map[string][2]string) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	coins, addresses, withdrawals = map[string]string{}, map[string]string{}, map[string][2]string{}
	for k, v := range x.coins {
		coins[k] = v
	}
	for k, v := range x.addresses {
		addresses[k] = v
	}
	for k, v := range x.withdrawals {
		withdrawals[k] = [2]string{v.wallet, v.id}
	}
	return coins, addresses, withdrawals
}
