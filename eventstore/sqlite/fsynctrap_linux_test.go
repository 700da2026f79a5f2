package sqlite_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// fsyncTrap intercepts every fsync and fdatasync of this process with a
// seccomp user-notification filter, before the kernel runs it. For a file
// under root it can either keep a copy of the file as it is at that moment
// (what the fsync makes durable: everything written before it) and let the
// fsync proceed, or fail the fsync with EIO without running it. Other
// fsyncs (of directories, of files elsewhere) proceed untouched.
//
// It observes and fails the real system calls that modernc's SQLite makes,
// with no seam in the store. A seccomp filter cannot be removed, so it must
// only be installed in a child process: see runChild.
type fsyncTrap struct {
	root, snap string

	mu    sync.Mutex
	fail  bool           // answer EIO instead of syncing
	syncs map[string]int // fsyncs let through per file under root
	fails int            // fsyncs of files under root failed
	err   error
}

// trapFsyncs installs the filter for the whole process and serves it until
// the process exits. With snap set, the file under root that an fsync names
// is copied to the same relative path under snap before the fsync runs.
func trapFsyncs(tb testing.TB, root, snap string) *fsyncTrap {
	tb.Helper()
	t := &fsyncTrap{root: filepath.Clean(root), snap: snap, syncs: map[string]int{}}
	fd, err := installFsyncFilter()
	if err != nil {
		tb.Fatalf("install seccomp filter: %v", err)
	}
	go t.serve(fd)
	return t
}

// setFail makes the fsyncs of files under root fail with EIO (true) or run
// (false).
func (t *fsyncTrap) setFail(fail bool) {
	t.mu.Lock()
	t.fail = fail
	t.mu.Unlock()
}

// counts returns how many fsyncs of each file under root (by relative
// path) were let through and how many failed, and the first error the trap
// met.
func (t *fsyncTrap) counts() (syncs map[string]int, fails int, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return maps.Clone(t.syncs), t.fails, t.err
}

// powerCut copies to dst the files under root as a power loss right now
// would leave them: each with its content at its last fsync (a file never
// fsynced is missing). Directory entries are taken as durable: a file
// deleted since its last fsync (a rollback journal) is missing too. Fsyncs
// wait meanwhile.
func (t *fsyncTrap) powerCut(dst string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := os.MkdirAll(dst, 0o700); err != nil {
		return err
	}
	err := filepath.WalkDir(t.snap, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(t.snap, path)
		if err != nil {
			return err
		}
		if _, err := os.Stat(filepath.Join(t.root, rel)); errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return copyFile(path, filepath.Join(dst, rel))
	})
	if errors.Is(err, os.ErrNotExist) {
		return nil // nothing was ever synced
	}
	return err
}

// The kernel's struct seccomp_notif and seccomp_notif_resp (linux/seccomp.h).
type seccompNotif struct {
	ID    uint64
	Pid   uint32
	Flags uint32
	Data  struct {
		Nr   int32
		Arch uint32
		IP   uint64
		Args [6]uint64
	}
}

type seccompNotifResp struct {
	ID    uint64
	Val   int64
	Error int32
	Flags uint32
}

func (t *fsyncTrap) serve(fd int) {
	for {
		var req seccompNotif
		if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SECCOMP_IOCTL_NOTIF_RECV, uintptr(unsafe.Pointer(&req))); e != 0 {
			if e == unix.EINTR || e == unix.ENOENT {
				continue
			}
			t.mu.Lock()
			t.err = fmt.Errorf("receive seccomp notification: %w", e)
			t.mu.Unlock()
			return
		}
		resp := seccompNotifResp{ID: req.ID, Flags: unix.SECCOMP_USER_NOTIF_FLAG_CONTINUE}
		// The caller is a thread of this process: its descriptor is ours.
		path, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", req.Data.Args[0]))
		if rel, ok := strings.CutPrefix(path, t.root+"/"); err == nil && ok && !isDir(path) {
			t.mu.Lock()
			switch {
			case t.fail:
				t.fails++
				resp = seccompNotifResp{ID: req.ID, Error: -int32(unix.EIO)}
			case t.snap != "":
				if err := copyFile(path, filepath.Join(t.snap, rel)); err != nil && t.err == nil {
					t.err = fmt.Errorf("snapshot %s: %w", rel, err)
				}
				t.syncs[rel]++
			default:
				t.syncs[rel]++
			}
			t.mu.Unlock()
		}
		// ENOENT: the caller is gone (its process is exiting).
		_, _, _ = unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SECCOMP_IOCTL_NOTIF_SEND, uintptr(unsafe.Pointer(&resp)))
	}
}

// installFsyncFilter installs, on every thread of the process, a seccomp
// filter that hands fsync and fdatasync to a listener, and returns the
// listener's descriptor.
func installFsyncFilter() (int, error) {
	var arch uint32
	switch runtime.GOARCH {
	case "amd64":
		arch = unix.AUDIT_ARCH_X86_64
	case "arm64":
		arch = unix.AUDIT_ARCH_AARCH64
	default:
		return -1, fmt.Errorf("no seccomp audit arch for %s", runtime.GOARCH)
	}
	const (
		ld  = unix.BPF_LD | unix.BPF_W | unix.BPF_ABS
		jeq = unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K
		ret = unix.BPF_RET | unix.BPF_K
	)
	prog := []unix.SockFilter{
		{Code: ld, K: 4}, // seccomp_data.arch
		{Code: jeq, Jt: 1, K: arch},
		{Code: ret, K: unix.SECCOMP_RET_ALLOW},
		{Code: ld, K: 0}, // seccomp_data.nr
		{Code: jeq, Jt: 2, K: unix.SYS_FSYNC},
		{Code: jeq, Jt: 1, K: unix.SYS_FDATASYNC},
		{Code: ret, K: unix.SECCOMP_RET_ALLOW},
		{Code: ret, K: unix.SECCOMP_RET_USER_NOTIF},
	}
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return -1, fmt.Errorf("no_new_privs: %w", err)
	}
	fd, _, e := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER,
		unix.SECCOMP_FILTER_FLAG_NEW_LISTENER|unix.SECCOMP_FILTER_FLAG_TSYNC|unix.SECCOMP_FILTER_FLAG_TSYNC_ESRCH,
		uintptr(unsafe.Pointer(&fprog)))
	runtime.KeepAlive(prog)
	if e != 0 {
		return -1, e
	}
	return int(fd), nil
}

func isDir(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.IsDir()
}

// copyFile copies src to dst in the kernel (copy_file_range).
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// childEnv names the directory a test run as a child works in; set only in
// the child.
const childEnv = "COINLEDGER_FSYNC_CHILD_DIR"

// inChild splits t's test between two processes: in the parent it runs
// the test again in a child (runChild), then check on the directory the
// child left, and returns child false; in the child it returns the
// directory to work in and child true.
func inChild(t *testing.T, check func(*testing.T, string)) (dir string, child bool) {
	if dir = os.Getenv(childEnv); dir != "" {
		return dir, true
	}
	dir = t.TempDir()
	runChild(t, t.Name(), dir)
	check(t, dir)
	return "", false
}

// runChild runs test (this test binary, -test.run of that one test) in a
// child process with childEnv set to dir and fails tb if the child fails.
func runChild(tb testing.TB, test, dir string) {
	tb.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+test+"$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), childEnv+"="+dir)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		tb.Fatalf("child %s: %v\n%s", test, err, out.String())
	}
	if !strings.Contains(out.String(), "--- PASS: "+test) {
		tb.Fatalf("child %s did not run the test:\n%s", test, out.String())
	}
	tb.Logf("child %s:\n%s", test, out.String())
}
