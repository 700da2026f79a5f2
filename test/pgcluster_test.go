package test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// pgCluster is a private PostgreSQL cluster a test starts, stops and
// restarts at will, for outage tests: the shared test server
// (COINLEDGER_TEST_POSTGRES_URL) is used by other packages in parallel and
// must never be stopped. It trusts local connections and runs without
// fsync, like test/pg.sh.
type pgCluster struct {
	bin  string // directory of initdb and pg_ctl
	dir  string // holds data/, the log and the socket
	port int
	uid  int // uid to run the server as when we are root (initdb refuses root); -1 otherwise
	gid  int
}

// pgBinDirs are where Debian's postgresql packages put the server
// binaries, newest first; test/pg.sh uses version 15.
var pgBinDirs = []string{"/usr/lib/postgresql/17/bin", "/usr/lib/postgresql/16/bin", "/usr/lib/postgresql/15/bin"}

// startPGCluster initializes and starts a private cluster, stopped and
// deleted when t ends. Without PostgreSQL binaries it fails under CI (test/pg.sh
// installs them there) and skips elsewhere.
func startPGCluster(t *testing.T) *pgCluster {
	t.Helper()
	c := &pgCluster{uid: -1, gid: -1}
	for _, d := range pgBinDirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			c.bin = d
			break
		}
	}
	if c.bin == "" {
		if p, err := exec.LookPath("initdb"); err == nil {
			c.bin = filepath.Dir(p)
		}
	}
	if c.bin == "" {
		msg := "no PostgreSQL server binaries (initdb, pg_ctl) in " + strings.Join(pgBinDirs, ", ") + " or PATH"
		if os.Getenv("CI") != "" {
			t.Fatalf("%s: run test/pg.sh once to install them", msg)
		}
		t.Skip(msg)
	}
	// Not t.TempDir: its parents are private to us, and the server may run
	// as another user.
	dir, err := os.MkdirTemp("", "coinledger-pgcluster-")
	if err != nil {
		t.Fatal(err)
	}
	c.dir = dir
	t.Cleanup(func() {
		// Immediate: the data is thrown away.
		_, _ = c.run("pg_ctl", "-D", c.data(), "-w", "-t", "30", "stop", "-m", "immediate")
		os.RemoveAll(dir)
	})
	if os.Getuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("running as root, and initdb refuses root: no postgres user to run the cluster as: %v", err)
		}
		c.uid, _ = strconv.Atoi(u.Uid)
		c.gid, _ = strconv.Atoi(u.Gid)
		if err := os.Chown(dir, c.uid, c.gid); err != nil {
			t.Fatal(err)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c.port = ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	if out, err := c.run("initdb", "-D", c.data(), "-U", "postgres", "-A", "trust", "--no-sync"); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	c.start(t)
	return c
}

func (c *pgCluster) data() string { return filepath.Join(c.dir, "data") }

// URL is the cluster's postgres database.
func (c *pgCluster) URL() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", c.port)
}

// schemaURL is URL with search_path set to schema (created by whoever
// opens it first).
func (c *pgCluster) schemaURL(schema string) string {
	return c.URL() + "&search_path=" + schema
}

// start starts the server and waits until it accepts connections.
func (c *pgCluster) start(t *testing.T) {
	t.Helper()
	opts := fmt.Sprintf("-p %d -c listen_addresses=127.0.0.1 -k %s -c fsync=off -c full_page_writes=off -c max_connections=100", c.port, c.dir)
	if out, err := c.run("pg_ctl", "-D", c.data(), "-l", filepath.Join(c.dir, "log"), "-w", "-t", "30", "start", "-o", opts); err != nil {
		log, _ := os.ReadFile(filepath.Join(c.dir, "log"))
		t.Fatalf("pg_ctl start: %v\n%s\n%s", err, out, log)
	}
}

// stop shuts the server down the way an operator's restart does (-m fast:
// open sessions are terminated, in-flight transactions rolled back).
func (c *pgCluster) stop(t *testing.T) {
	t.Helper()
	if out, err := c.run("pg_ctl", "-D", c.data(), "-w", "-t", "30", "stop", "-m", "fast"); err != nil {
		t.Fatalf("pg_ctl stop: %v\n%s", err, out)
	}
}

// run runs one of the cluster's binaries, as the postgres user when we are
// root.
func (c *pgCluster) run(name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	path := filepath.Join(c.bin, name)
	var cmd *exec.Cmd
	if c.uid >= 0 {
		cmd = exec.CommandContext(ctx, "runuser", append([]string{"-u", "postgres", "--", path}, args...)...)
	} else {
		cmd = exec.CommandContext(ctx, path, args...)
	}
	cmd.Dir = c.dir
	return cmd.CombinedOutput()
}
