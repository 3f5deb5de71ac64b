package cloudtest

import "syscall"

// procAttr puts a child in its own process group and has the kernel send it sig when
// the test process dies without cleaning up (a panic, a timeout, kill -9), so that no
// RabbitMQ node outlives its test. (Pdeathsig follows the thread that started the
// child; Go keeps that thread unless a goroutine locked to it exits.)
func procAttr(sig syscall.Signal) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: sig}
}
