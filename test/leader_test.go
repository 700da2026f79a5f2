package test

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coinledger/coinledger/projections/dbtest"
)

// leaderStatus is the part of /api/v1/status about instances.
type leaderStatus struct {
	Instance    statusInstance   `json:"instance"`
	Instances   []statusInstance `json:"instances"`
	Projections []struct {
		Name  string `json:"name"`
		Kind  string `json:"kind"`
		State string `json:"state"`
	} `json:"projections"`
}

type statusInstance struct {
	ID        string   `json:"id"`
	Version   string   `json:"version"`
	Roles     []string `json:"roles"`
	Heartbeat string   `json:"heartbeat"`
}

// leaderRoles are the roles of a server with the default configuration
// (BTC on the null chain) on shared Postgres read models.
var leaderRoles = []string{"alerts", "chainsync:BTC", "checkpoint_signer", "expiry", "outbox", "projections"}

// leaders reads c's status and returns the leader of each role among the
// live instances (a role led by two is reported as "a+b").
func leaders(t *testing.T, c *client) (leaderStatus, map[string]string) {
	t.Helper()
	var st leaderStatus
	c.expect(http.StatusOK, "GET", "/status", nil).JSON(t, &st)
	out := map[string]string{}
	for _, in := range st.Instances {
		for _, r := range in.Roles {
			if out[r] != "" {
				out[r] += "+"
			}
			out[r] += in.ID
		}
	}
	return st, out
}

// TestServeProcessesElectLeadersAndFailOver: three `coinledger serve`
// processes on one Postgres (event store and read models). Their statuses
// list the three instances, each role led by exactly one; a write on one
// is read on the others with min_position (the non-leaders wait on the
// shared checkpoint). The leader is killed with SIGKILL: the survivors take
// its roles within 5 s (the figure is logged), and reads and writes go on.
func TestServeProcessesElectLeadersAndFailOver(t *testing.T) {
	url := dbtest.PostgresURL(t)
	env := func(id string) []string {
		return []string{"COINLEDGER_EVENT_STORE=" + url, "COINLEDGER_READ_MODELS=" + url, "COINLEDGER_INSTANCE_ID=" + id,
			"COINLEDGER_SEAL_KEY=0123456789abcdef0123456789abcdef", "COINLEDGER_JWT_SECRET=jwt-secret-jwt-secret-jwt-secret-0123"}
	}
	servers := map[string]*Server{}
	clients := map[string]*client{}
	for i, id := range []string{"inst-a", "inst-b", "inst-c"} {
		servers[id], clients[id] = adminServer(t, "", env(id)...)
		if i == 0 {
			setUpWallet(t, clients[id], "shared", map[string]string{"alice": "1.00000000"}, "alice", "bob")
		}
	}
	ids := []string{"inst-a", "inst-b", "inst-c"}
	waitLeaders := func(live []string, within time.Duration) map[string]string {
		t.Helper()
		deadline := time.Now().Add(within)
		for {
			st, lead := leaders(t, clients[live[0]])
			var got []string
			for _, in := range st.Instances {
				got = append(got, in.ID)
			}
			ok := slices.Equal(got, live) && st.Instance.ID == live[0]
			for _, r := range leaderRoles {
				if !slices.Contains(live, lead[r]) {
					ok = false
				}
			}
			if ok && len(lead) == len(leaderRoles) {
				return lead
			}
			if time.Now().After(deadline) {
				t.Fatalf("instances %v, leaders %v after %v: want %v, one leader of each of %v", got, lead, within, live, leaderRoles)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	lead := waitLeaders(ids, 15*time.Second)
	for _, id := range ids {
		st, l := leaders(t, clients[id])
		if st.Instance.ID != id || st.Instance.Version == "" {
			t.Errorf("instance on %s: %+v", id, st.Instance)
		}
		if _, err := time.Parse(time.RFC3339, st.Instance.Heartbeat); err != nil {
			t.Errorf("heartbeat of %s: %v", id, err)
		}
		for r, who := range l {
			if who != lead[r] {
				t.Errorf("%s says %s leads %s, %s said %s", id, who, r, ids[0], lead[r])
			}
		}
	}
	t.Logf("leaders: %v", lead)

	transfer := func(c *client, key string) uint64 { return sharedTransfer(t, c, key) }
	readBob := func(on string, pos uint64, want string) {
		t.Helper()
		var acct struct{ Balance balanceJSON }
		clients[on].expect(http.StatusOK, "GET", "/wallets/shared/accounts/bob?min_position="+strconv.FormatUint(pos, 10), nil).JSON(t, &acct)
		if acct.Balance.Available != want {
			t.Fatalf("bob on %s at %d: %+v, want %s available", on, pos, acct.Balance, want)
		}
	}
	// Read-your-writes across instances, each writing in turn.
	n := 0
	for _, w := range ids {
		n++
		pos := transfer(clients[w], "t-"+strconv.Itoa(n))
		for _, r := range ids {
			readBob(r, pos, fmt.Sprintf("0.%d0000000", n))
		}
	}

	// Kill the leader of the read models (it leads the others too, most
	// likely: it started first).
	victim := lead["projections"]
	var held []string
	for r, who := range lead {
		if who == victim {
			held = append(held, r)
		}
	}
	survivors := slices.DeleteFunc(slices.Clone(ids), func(id string) bool { return id == victim })
	killed := time.Now()
	servers[victim].Kill()
	var took time.Duration
	for {
		// Each survivor says what it leads itself (the heartbeats lag).
		l := map[string]string{}
		for _, id := range survivors {
			var st leaderStatus
			clients[id].expect(http.StatusOK, "GET", "/status", nil).JSON(t, &st)
			for _, r := range st.Instance.Roles {
				l[r] += id
			}
		}
		taken := true
		for _, r := range held {
			if !slices.Contains(survivors, l[r]) {
				taken = false
			}
		}
		if taken {
			took = time.Since(killed)
			break
		}
		if time.Since(killed) > 5*time.Second {
			t.Fatalf("roles %v of the killed %s not taken within 5 s: %v", held, victim, l)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("failover after kill -9 of %s: roles %v taken over in %v", victim, held, took)
	// Its heartbeat stops: within the TTL it leaves the live list.
	after := waitLeaders(survivors, 10*time.Second)
	t.Logf("leaders after the failover: %v", after)
	for _, w := range survivors {
		n++
		pos := transfer(clients[w], "t-"+strconv.Itoa(n))
		for _, r := range survivors {
			readBob(r, pos, fmt.Sprintf("0.%d0000000", n))
		}
	}
	// The leadership gauges.
	for _, id := range survivors {
		code, body := get(t, servers[id].URL+"/metrics")
		if code != http.StatusOK {
			t.Fatalf("/metrics on %s: %d", id, code)
		}
		for _, r := range leaderRoles {
			want := fmt.Sprintf("coinledger_leader{role=%q} %d", r, map[bool]int{true: 1}[after[r] == id])
			if !strings.Contains(body, want) {
				t.Errorf("/metrics on %s lacks %s", id, want)
			}
		}
	}
}
