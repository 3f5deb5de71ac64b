//go:build !linux

package store

import "errors"

// freeSpace is not implemented here: the MinFree guard is off.
func freeSpace(string) (uint64, error) {
	return 0, errors.New("free space unknown on this platform")
}
