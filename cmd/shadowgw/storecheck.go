package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/shadowgw/shadowgw/cmd/internal/config"
	"github.com/shadowgw/shadowgw/store"
)

// checkStoreFile is `shadowgw check --store`: it opens the store file of cfg (the
// gateway must be stopped: the file is locked while it runs) with the configured
// routes, so that opening moves nothing, runs store.Check — upward messages, dead
// letters, the devices' command queues and their indexes — and prints the result
// with the file name. It does not salvage a damaged file (the gateway does that at
// start); it says what is wrong.
func checkStoreFile(cfg config.Config, stdout io.Writer) error {
	path := filepath.Join(cfg.Store.Dir, storeFile)
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		fmt.Fprintf(stdout, "store %s: no file yet (nothing stored)\n", path)
		return nil
	}
	routes, err := storeRoutes(cfg)
	if err != nil {
		return err
	}
	st, err := store.Open(path, store.Options{LockTimeout: 300 * time.Millisecond, Routes: routes})
	if errors.Is(err, store.ErrLocked) {
		return fmt.Errorf("store %s: the gateway is running and holds it: stop it first to check it: %w", path, err)
	}
	if err != nil {
		return fmt.Errorf("store %s: %w", path, err)
	}
	err = st.Check()
	s, c := st.Stats(), st.CommandStats()
	if cerr := st.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		fmt.Fprintf(stdout, "store %s: DAMAGED\n%v\n", path, err)
		return fmt.Errorf("store %s failed its check", path)
	}
	fmt.Fprintf(stdout, "store %s: OK (%d messages, %d dead letters, %d commands for %d devices, %d command dead letters)\n",
		path, s.Messages, s.DeadLetters, c.Messages, c.Devices, c.DeadLetters)
	return nil
}
