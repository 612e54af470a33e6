//go:build !linux

package dbmodetest

import "syscall"

// dieWithParent has no portable equivalent outside Linux; cleanup stops the
// nodes as usual.
func dieWithParent() *syscall.SysProcAttr { return nil }
