package main

import (
	"sort"
	"strings"
)

// envVars are the environment variables coinledger reads; the test suite's
// own are COINLEDGER_TEST_*. Tests hold this list to the code (every
// COINLEDGER_ name in it is here), to README.md's configuration table and
// to docker-compose.yml.
var envVars = []string{
	"COINLEDGER_ADMIN_PASSWORD",
	"COINLEDGER_AUDIT_KEY_FILE",
	"COINLEDGER_BCRYPT_COST",
	"COINLEDGER_BUS",
	"COINLEDGER_CHECKPOINT_EVERY",
	"COINLEDGER_CHECKPOINT_INTERVAL",
	"COINLEDGER_CONFIG",
	"COINLEDGER_DATA_DIR",
	"COINLEDGER_EVENT_STORE",
	"COINLEDGER_INSTANCE_ID",
	"COINLEDGER_JWT_SECRET",
	"COINLEDGER_LISTEN",
	"COINLEDGER_LOG_FORMAT",
	"COINLEDGER_LOG_LEVEL",
	"COINLEDGER_READ_MODELS",
	"COINLEDGER_SEAL_KEY",
	"COINLEDGER_SNAPSHOT_EVERY",
	"COINLEDGER_TOKEN",
	"COINLEDGER_TRUSTED_PROXIES",
	"COINLEDGER_WALLETNOTIFY_LISTEN",
	"COINLEDGER_WS_MAX_BUFFERED_EVENTS",
	"COINLEDGER_WS_MAX_CONNECTIONS_PER_USER",
}

// envTestPrefix marks the variables of the test suite (servers to test
// against), which the binary ignores.
const envTestPrefix = "COINLEDGER_TEST_"

// unknownEnv returns, sorted, the COINLEDGER_* names set in environ
// (os.Environ's form) that coinledger does not read: likely misspellings,
// silently ignored otherwise. Each comes with the known name closest to
// it, if one is close.
func unknownEnv(environ []string) (unknown []string, closest map[string]string) {
	known := make(map[string]bool, len(envVars))
	for _, k := range envVars {
		known[k] = true
	}
	closest = map[string]string{}
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, "COINLEDGER_") || strings.HasPrefix(name, envTestPrefix) || known[name] {
			continue
		}
		unknown = append(unknown, name)
		best, bestDist := "", 4 // at most 3 edits away
		for _, k := range envVars {
			if d := editDistance(name, k); d < bestDist {
				best, bestDist = k, d
			}
		}
		if best != "" {
			closest[name] = best
		}
	}
	sort.Strings(unknown)
	return unknown, closest
}

// editDistance is the Levenshtein distance between a and b (bytes).
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
