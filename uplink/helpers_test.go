package uplink

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/Azure/go-amqp"

	"github.com/shadowgw/shadowgw/store"
	"github.com/shadowgw/shadowgw/uplink/cloudtest"
)

// openStore opens a store in a temporary directory; at the end of the test it checks
// the file's consistency and closes it.
func openStore(t testing.TB, sync bool) *store.Store {
	t.Helper()
	return openStoreWith(t, store.Options{NoSync: !sync})
}

// openStoreWith is openStore with options, for example routes.
func openStoreWith(t testing.TB, opts store.Options) *store.Store {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "queue.db"), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := st.Check(); err != nil {
			t.Errorf("store check: %v", err)
		}
		if err := st.Close(); err != nil {
			t.Errorf("store close: %v", err)
		}
	})
	return st
}

// appendMessages stores msgs for address from source, as a device would have sent them.
func appendMessages(t testing.TB, st *store.Store, address, source string, msgs ...*amqp.Message) {
	t.Helper()
	payloads := make([][]byte, len(msgs))
	for i, m := range msgs {
		p, err := m.MarshalBinary()
		if err != nil {
			t.Fatalf("encode message %d: %v", i, err)
		}
		payloads[i] = p
	}
	appendPayloads(t, st, address, source, payloads...)
}

// appendPayloads stores raw payloads, in order, in group commits, and returns their
// seqs.
func appendPayloads(t testing.TB, st *store.Store, address, source string, payloads ...[]byte) []uint64 {
	t.Helper()
	msgs := make([]*store.Message, len(payloads))
	var wg sync.WaitGroup
	errs := make(chan error, len(payloads))
	for i, p := range payloads {
		msgs[i] = &store.Message{Address: address, Source: source, Payload: p}
		wg.Add(1)
		st.AppendAsync(msgs[i], func(err error) {
			if err != nil {
				errs <- err
			}
			wg.Done()
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("append: %v", err)
	}
	seqs := make([]uint64, len(msgs))
	for i, m := range msgs {
		seqs[i] = m.Seq
	}
	return seqs
}

// stored returns how many messages are queued in st.
func stored(t testing.TB, st *store.Store) int {
	t.Helper()
	return int(st.Stats().Messages)
}

// testConfig returns a configuration for broker b with the password in a file, and
// the file's path. Backoff is short so that retries show within a test.
func testConfig(t testing.TB, b *cloudtest.Broker) (Config, string) {
	t.Helper()
	pw := b.WritePasswordFile(t)
	return Config{
		URL:           b.URL,
		CAFile:        b.CAFile,
		User:          b.User,
		PasswordFile:  pw,
		AddressPrefix: "/queue/",
		BackoffMin:    100 * time.Millisecond,
		BackoffMax:    400 * time.Millisecond,
		RetryDelay:    100 * time.Millisecond,
		DialTimeout:   10 * time.Second,
	}, pw
}

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// startUplink runs an Uplink until the end of the test, then checks that Run returned
// nil and that no goroutine was left behind.
func startUplink(t testing.TB, cfg Config, src Source, log *slog.Logger) *Uplink {
	t.Helper()
	before := runtime.NumGoroutine()
	u, err := New(cfg, src, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- u.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: got %v, want nil", err)
			}
		case <-time.After(15 * time.Second):
			t.Fatal("Run did not return within 15s of cancel")
		}
		if st := u.Status(); st.State != StateStopped {
			t.Errorf("state after Run: got %v, want %v", st.State, StateStopped)
		}
		checkFor(t, 5*time.Second, func() bool { return runtime.NumGoroutine() <= before }, func() string {
			buf := make([]byte, 1<<16)
			return "goroutines left after Run:\n" + string(buf[:runtime.Stack(buf, true)])
		})
	})
	return u
}

// checkFor polls cond until it holds or timeout passes, then fails with msg().
func checkFor(t testing.TB, timeout time.Duration, cond func() bool, msg func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", timeout, msg())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// logBuffer collects log lines for counting; it is safe for concurrent use.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// lines returns the lines that contain all of substrs.
func (b *logBuffer) lines(substrs ...string) []string {
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		ok := l != ""
		for _, s := range substrs {
			ok = ok && strings.Contains(l, s)
		}
		if ok {
			out = append(out, l)
		}
	}
	return out
}

// newLogger returns a logger at level info writing text lines to a new logBuffer.
func newLogger() (*slog.Logger, *logBuffer) {
	b := new(logBuffer)
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelInfo})), b
}
