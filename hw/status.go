package hw

import (
	"sync"
	"time"
)

// Status is a snapshot of an input for status pages and metrics.
type Status struct {
	Name   string
	Kind   Kind
	Target string
	What   string // what is read: "BME280 at 0x76 on /dev/i2c-1", "/dev/ttyUSB0 (9600 8N1, nmea)"

	Open        bool      // the sensor or line is open and was working at the last attempt
	LastReading Reading   // the last stored reading; zero Time if none yet
	LastError   string    // the last failure or rejected line, "" if none yet
	LastErrorAt time.Time // when LastError happened
	Failures    int       // consecutive failed attempts to open or read
	NextRetry   time.Time // when a failed input is tried again; zero when not waiting

	Readings       uint64 // readings stored (durably) since start
	Errors         uint64 // failed attempts to open or read the sensor or line
	ChecksumErrors uint64 // lines or words whose checksum or CRC did not match
	ParseErrors    uint64 // lines that could not be parsed
	Skipped        uint64 // lines that are not readings, and readings within Interval
	StoreErrors    uint64 // readings the store refused (disk full, ...)
	Opens          uint64 // times the sensor or line was opened
}

// status holds an Input's Status; the Run goroutine writes it, Status reads it.
type status struct {
	mu sync.Mutex
	s  Status
}

func (st *status) get() Status {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.s
}

func (st *status) update(f func(*Status)) {
	st.mu.Lock()
	f(&st.s)
	st.mu.Unlock()
}
