package main

import (
	"os"
	"runtime/debug"
)

// The garbage collector's settings for a running gateway, unless the environment
// sets GOGC or GOMEMLIMIT (then the Go runtime's reading of them stands).
//
// A gateway's live heap is small (a few MiB: buffers, the store's page cache is
// the kernel's) and it allocates per message, so at Go's default GOGC=100 it
// collects often: on the forwarding path the collector was the largest cost left
// (issue 15; TestRate, rhea sink: 27.5 → 22.0 µs of CPU per message with
// GOGC=400). The soft memory limit keeps the heap that GOGC=400 allows from
// growing without bound on a Pi Zero's 512 MiB: near the limit the collector runs
// as often as it must.
const (
	gatewayGCPercent   = 400
	gatewayMemoryLimit = 64 << 20
)

// tuneGC applies the gateway's collector settings.
func tuneGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gatewayGCPercent)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(gatewayMemoryLimit)
	}
}
