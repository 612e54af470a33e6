package dbmodetest

import "syscall"

// dieWithParent makes the kernel kill a node if the test process dies before
// its cleanup runs, so no kongsim outlives an interrupted test run.
func dieWithParent() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
