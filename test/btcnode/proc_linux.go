package btcnode

import "syscall"

// sysProcAttr makes the kernel kill a server when the test binary dies
// without running its cleanups (go test -timeout, a crash).
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
