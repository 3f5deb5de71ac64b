//go:build !linux

package store

// onTmpfs reports whether dir is on a tmpfs; only Linux is checked.
func onTmpfs(string) bool { return false }
