package edge

import (
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shadowgw/shadowgw/edge/credential"
)

// fuzzHash is the credential of the user "dev" with password "secret" in FuzzConn.
var fuzzHash = func() string {
	h, err := credential.Hash("secret")
	if err != nil {
		panic(err)
	}
	return h
}()

// FuzzConn feeds arbitrary bytes to one server connection from its first byte: the
// protocol header, the SASL exchange, open and everything after it. It checks that
// nothing panics and that the connection always ends (no goroutine waits forever). The
// seed corpus in testdata/fuzz/FuzzConn holds byte streams captured from go-amqp and
// Proton Python devices (see TestCaptureSeeds).
func FuzzConn(f *testing.F) {
	f.Add([]byte("AMQP\x03\x01\x00\x00"))
	f.Add([]byte("AMQP\x00\x01\x00\x00"))
	f.Fuzz(func(t *testing.T, in []byte) {
		srv := New(Config{
			AllowAnonymous:   true,
			Users:            map[string]string{"dev": fuzzHash},
			HandshakeTimeout: 200 * time.Millisecond,
			IdleTimeout:      200 * time.Millisecond,
			Credit:           4,
		}, &memSink{}, nil)
		a, b := net.Pipe()
		go io.Copy(io.Discard, b)
		go func() {
			b.Write(in)
			b.Close()
		}()
		c := newConn(srv, a, 1)
		done := make(chan struct{})
		go func() {
			defer close(done)
			c.serve(context.Background())
		}()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("connection did not end")
		}
	})
}

// teeListener records the bytes each accepted connection reads.
type teeListener struct {
	net.Listener
	rec chan *strings.Builder
}

type teeConn struct {
	net.Conn
	w *strings.Builder
}

func (c teeConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.w.Write(p[:n])
	return n, err
}

func (l teeListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	w := &strings.Builder{}
	l.rec <- w
	return teeConn{c, w}, nil
}

// TestCaptureSeeds records what real clients send and writes it as FuzzConn's seed
// corpus. It runs only with SHADOWGW_CAPTURE_SEEDS=1; the corpus is committed.
func TestCaptureSeeds(t *testing.T) {
	if os.Getenv("SHADOWGW_CAPTURE_SEEDS") != "1" {
		t.Skip("set SHADOWGW_CAPTURE_SEEDS=1 to capture FuzzConn seeds")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzConn")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range captureClients {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			tl := teeListener{ln, make(chan *strings.Builder, 4)}
			srv := New(Config{AllowAnonymous: true, Users: map[string]string{"dev": fuzzHash}, MaxFrameSize: 4096}, &memSink{}, nil)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- srv.Serve(ctx, tl) }()
			tc.run(t, ln.Addr().String())
			time.Sleep(200 * time.Millisecond)
			cancel()
			<-done
			close(tl.rec)
			i := 0
			for w := range tl.rec {
				if w.Len() == 0 {
					continue
				}
				name := filepath.Join(dir, tc.name+"-"+string(rune('a'+i)))
				if err := os.WriteFile(name, []byte("go test fuzz v1\n[]byte("+quote(w.String())+")\n"), 0o644); err != nil {
					t.Fatal(err)
				}
				t.Logf("%s: %d bytes", name, w.Len())
				i++
			}
		})
	}
}

func quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c >= 0x20 && c < 0x7f:
			b.WriteByte(c)
		default:
			b.WriteString("\\x")
			b.WriteByte("0123456789abcdef"[c>>4])
			b.WriteByte("0123456789abcdef"[c&15])
		}
	}
	b.WriteByte('"')
	return b.String()
}
