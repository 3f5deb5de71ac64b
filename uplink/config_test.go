package uplink

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	amqp "github.com/Azure/go-amqp"

	"github.com/shadowgw/shadowgw/uplink/cloudtest"
)

func TestValidate(t *testing.T) {
	good := Config{URL: "amqps://cloud.example:5671", User: "gw", PasswordFile: "/run/pw"}
	tests := []struct {
		name    string
		change  func(*Config)
		wantErr string // "" for valid
	}{
		{"good", func(*Config) {}, ""},
		{"default port", func(c *Config) { c.URL = "amqps://cloud.example" }, ""},
		{"ipv6", func(c *Config) { c.URL = "amqps://[::1]:5671" }, ""},
		{"plain amqp", func(c *Config) { c.URL = "amqp://cloud.example" }, "field URL: scheme must be amqps"},
		{"credentials in URL", func(c *Config) { c.URL = "amqps://u:p@cloud.example" }, "field URL: must not contain user information"},
		{"no host", func(c *Config) { c.URL = "amqps://:5671" }, "field URL: has no host"},
		{"path", func(c *Config) { c.URL = "amqps://cloud.example/vhost" }, "field URL: must be amqps://host[:port]"},
		{"password file without user", func(c *Config) { c.User = "" }, "field User"},
		{"user without password file", func(c *Config) { c.PasswordFile = "" }, "field PasswordFile"},
		{"anonymous", func(c *Config) { c.User, c.PasswordFile = "", "" }, ""},
		{"external", func(c *Config) { c.User, c.PasswordFile, c.CertFile, c.KeyFile = "", "", "c.pem", "k.pem" }, ""},
		{"cert without key", func(c *Config) { c.CertFile = "c.pem" }, "field KeyFile"},
		{"fallbacks", func(c *Config) { c.URL = "amqps://a.example, amqps://b.example:5672" }, ""},
		{"bad fallback", func(c *Config) { c.URL = "amqps://a.example,amqp://b.example" }, "field URL: scheme must be amqps"},
		{"empty in list", func(c *Config) { c.URL = "amqps://a.example,," }, "field URL"},
		{"negative rate", func(c *Config) { c.RateLimit = -1 }, "field RateLimit"},
		{"durability", func(c *Config) { c.TargetDurability = "forever" }, "field TargetDurability"},
		{"durability none", func(c *Config) { c.TargetDurability = "none" }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := good
			tt.change(&c)
			err := c.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("got %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, ErrConfig) {
				t.Fatalf("got %v, want an ErrConfig containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestConnOptions(t *testing.T) {
	dir := t.TempDir()
	certs := cloudtest.NewCertificates(t, dir, "gw")
	pw := filepath.Join(dir, "pw")
	writeFile(t, pw, "s3cret\r\n")
	notPEM := filepath.Join(dir, "not.pem")
	writeFile(t, notPEM, "hello")

	c := Config{User: "gw", PasswordFile: pw, CAFile: certs.CAFile, IdleTimeout: time.Second}
	opts, fp, err := c.connOptions("broker.example")
	if err != nil {
		t.Fatal(err)
	}
	if fp != "" {
		t.Errorf("fingerprint without client certificate: got %q, want none", fp)
	}
	if opts.TLSConfig.ServerName != "broker.example" || opts.TLSConfig.RootCAs == nil || opts.TLSConfig.InsecureSkipVerify {
		t.Errorf("TLS config: got %+v, want verification of broker.example against the CA file", opts.TLSConfig)
	}
	if opts.SASLType == nil {
		t.Error("no SASL type")
	}

	for _, tt := range []struct {
		name    string
		change  func(*Config)
		wantErr string
	}{
		{"missing password file", func(c *Config) { c.PasswordFile = filepath.Join(dir, "nope") }, "read password file"},
		{"missing CA file", func(c *Config) { c.CAFile = filepath.Join(dir, "nope") }, "read CA file"},
		{"CA file without PEM", func(c *Config) { c.CAFile = notPEM }, "no PEM certificate"},
		{"missing key file", func(c *Config) { c.CertFile, c.KeyFile = certs.ClientCert, filepath.Join(dir, "nope") }, "load client certificate"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := c
			tt.change(&c)
			if _, _, err := c.connOptions("x"); err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("got %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func TestNew(t *testing.T) {
	st := openStore(t, false)
	u, err := New(Config{URL: "amqps://10.1.2.3", User: "gw", PasswordFile: "pw"}, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(u.endpoints) != 1 || u.endpoints[0] != (endpoint{"10.1.2.3:5671", "10.1.2.3"}) {
		t.Errorf("got endpoints %+v, want 10.1.2.3:5671 named 10.1.2.3", u.endpoints)
	}
	if u.cfg.InFlight != DefaultInFlight || u.cfg.BackoffMax != DefaultBackoffMax {
		t.Errorf("defaults not applied: %+v", u.cfg)
	}
	if s := u.Status(); s.State != StateStopped || s.Endpoint != "10.1.2.3:5671" {
		t.Errorf("status: got %+v", s)
	}
	if _, err := New(Config{}, st, nil); !errors.Is(err, ErrConfig) {
		t.Errorf("empty config: got %v, want ErrConfig", err)
	}
	if _, err := New(Config{URL: "amqps://h", User: "u", PasswordFile: "p"}, nil, nil); !errors.Is(err, ErrConfig) {
		t.Errorf("nil source: got %v, want ErrConfig", err)
	}
}

func TestConfigLogValue(t *testing.T) {
	var buf logBuffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	log.Info("config", "uplink", Config{URL: "amqps://h", User: "u", PasswordFile: "/etc/shadowgw/password"})
	if s := buf.String(); !strings.Contains(s, "uplink.password_file=/etc/shadowgw/password") {
		t.Errorf("got %q, want the password file's path", s)
	}
}

// TestUnreachable runs against a port where nothing listens: each attempt fails with
// one warn line, the backoff grows, and Run stops promptly when cancelled.
func TestUnreachable(t *testing.T) {
	st := openStore(t, false)
	appendPayloads(t, st, "a", "dev", encode(t, amqp.NewMessage([]byte("waits"))))
	addr := closedPort(t)
	pw := filepath.Join(t.TempDir(), "pw")
	writeFile(t, pw, "x")
	log, logs := newLogger()
	cfg := Config{URL: "amqps://" + addr, User: "gw", PasswordFile: pw, BackoffMin: 20 * time.Millisecond, BackoffMax: 80 * time.Millisecond}
	u := startUplink(t, cfg, st, log)

	checkFor(t, 5*time.Second, func() bool { return u.Status().Failures >= 5 }, func() string {
		return "fewer than 5 failures"
	})
	s := u.Status()
	if s.State != StateWaiting && s.State != StateConnecting {
		t.Errorf("state: got %v, want waiting or connecting", s.State)
	}
	if !strings.Contains(s.LastError, "connection refused") {
		t.Errorf("last error: got %q, want connection refused", s.LastError)
	}
	checkLogBounded(t, logs, u.Status().Failures, "connection refused")
	if n := stored(t, st); n != 1 {
		t.Errorf("store: got %d messages, want 1", n)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := u.Run(ctx); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Errorf("second Run: got %v, want an error", err)
	}
}

// closedPort returns a loopback address where nothing listens.
func closedPort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}
