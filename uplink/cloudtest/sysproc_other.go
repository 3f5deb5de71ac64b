//go:build unix && !linux

package cloudtest

import "syscall"

// procAttr puts a child in its own process group. Outside Linux there is no parent
// death signal: a test process that dies without cleaning up leaves the node running.
func procAttr(syscall.Signal) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
