package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// testFiles writes a CA file with a throwaway self-signed certificate and a password file
// into a temporary directory and returns their paths.
func testFiles(t *testing.T) (dir, ca, password string) {
	t.Helper()
	dir = t.TempDir()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "shadowgw test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca = filepath.Join(dir, "ca.pem")
	writeFile(t, ca, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})), 0o644)
	password = filepath.Join(dir, "uplink.password")
	writeFile(t, password, "s3cret\n", 0o600)
	return dir, ca, password
}

func writeFile(t *testing.T, name, content string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(name, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(name, mode); err != nil { // WriteFile's mode is subject to umask
		t.Fatal(err)
	}
}

func TestDefaultIsValid(t *testing.T) {
	t.Chdir(t.TempDir())
	c := Default()
	if err := c.Validate(); err != nil {
		t.Errorf("Default().Validate() = %v", err)
	}
	if ws := c.Warnings(); len(ws) != 0 {
		t.Errorf("Default().Warnings() = %v", ws)
	}
	want := Edge{Listen: "127.0.0.1:5672", AllowAnonymous: true, MaxFrameSize: 65536, IdleTimeout: time.Minute, MaxMessageSize: 1 << 20, Credit: 256,
		MaxConnections: 1000, MaxSessions: 32, MaxLinks: 64, HandshakeTimeout: 10 * time.Second}
	if !reflect.DeepEqual(c.Edge, want) {
		t.Errorf("Default().Edge = %+v, want %+v", c.Edge, want)
	}
	if c.Store.Dir != "./shadowgw-data" || c.Uplink.Enabled() || len(c.Devices) != 0 || c.Log.Level != "info" {
		t.Errorf("Default() = %+v", c)
	}
}

func TestValidateGood(t *testing.T) {
	dir, ca, pw := testFiles(t)
	text := "[edge]\nlisten = :5672\nallow-anonymous = false\nidle-timeout = 0s\n" +
		"[store]\ndir = data\nmax-delay = 1s\n" +
		"[uplink]\nurl = amqps://broker.example.com\nca = ca.pem\nuser = gw\npassword-file = uplink.password\nserver-name = other.example.com\n" +
		"[device \"sensor-1\"]\npassword-hash = " + testHash + "\n" +
		"[device \"sensor-2@site.a\"]\npassword-hash = " + testHash + "\n" +
		"[log]\nlevel = debug\n"
	name := filepath.Join(dir, "shadowgw.conf")
	writeFile(t, name, text, 0o644)
	c, err := Check(name, Flags{})
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	if c.Uplink.CA != ca || c.Uplink.PasswordFile != pw || c.Store.Dir != filepath.Join(dir, "data") {
		t.Errorf("paths not resolved against the file's directory: %+v %+v", c.Uplink, c.Store)
	}
}

func TestValidateErrors(t *testing.T) {
	dir, ca, pw := testFiles(t)
	notPEM := filepath.Join(dir, "not.pem")
	writeFile(t, notPEM, "hello\n", 0o644)
	keyPEM := filepath.Join(dir, "key.pem")
	writeFile(t, keyPEM, string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1}})), 0o600)
	badCert := filepath.Join(dir, "bad.pem")
	writeFile(t, badCert, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1, 2, 3}})), 0o644)
	missing := filepath.Join(dir, "missing")
	uplink := "[uplink]\nurl = amqps://b.example\nca = " + ca + "\nuser = gw\npassword-file = " + pw + "\n"

	tests := []errorCase{
		{"listen without port", "[edge]\nlisten = localhost\n",
			[]string{`shadowgw.conf:2: [edge] listen: want HOST:PORT, got "localhost"`}},
		{"listen bad port", "[edge]\nlisten = localhost:amqp\n",
			[]string{`shadowgw.conf:2: [edge] listen: port must be a number from 0 to 65535, got "amqp"`}},
		{"listen port too large", "[edge]\nlisten = :65536\n",
			[]string{`shadowgw.conf:2: [edge] listen: port must be a number from 0 to 65535, got "65536"`}},
		{"no anonymous and no devices", "[edge]\nallow-anonymous = false\n",
			[]string{`shadowgw.conf:2: [edge] allow-anonymous: is false and there is no [device "NAME"] section: no device could connect`}},
		{"frame size below AMQP minimum", "[edge]\nmax-frame-size = 511\n",
			[]string{"shadowgw.conf:2: [edge] max-frame-size: must be at least 512 (AMQP 1.0 MIN-MAX-FRAME-SIZE), got 511"}},
		{"idle timeout too short", "[edge]\nidle-timeout = 500ms\n",
			[]string{"shadowgw.conf:2: [edge] idle-timeout: must be 0 (off) or from 1s to 24h0m0s, got 500ms"}},
		{"negative idle timeout", "[edge]\nidle-timeout = -1s\n",
			[]string{"shadowgw.conf:2: [edge] idle-timeout: must be 0 (off) or from 1s to 24h0m0s, got -1s"}},
		{"message size zero", "[edge]\nmax-message-size = 0\n",
			[]string{"shadowgw.conf:2: [edge] max-message-size: must be from 1 to 268435456 (256MiB), got 0"}},
		{"message size too large", "[edge]\nmax-message-size = 1GiB\n",
			[]string{"shadowgw.conf:2: [edge] max-message-size: must be from 1 to 268435456 (256MiB), got 1073741824"}},
		{"credit zero", "[edge]\ncredit = 0\n",
			[]string{"shadowgw.conf:2: [edge] credit: must be from 1 to 65536, got 0"}},
		{"empty data dir", "[store]\ndir =\n",
			[]string{"shadowgw.conf:2: [store] dir: must not be empty"}},
		{"data dir is a file", "[store]\ndir = " + ca + "\n",
			[]string{"shadowgw.conf:2: [store] dir: " + ca + " is not a directory"}},
		{"batch too large", "[store]\nmax-batch = 100000\n",
			[]string{"shadowgw.conf:2: [store] max-batch: must be from 1 to 65536, got 100000"}},
		{"batch delay too long", "[store]\nmax-delay = 2s\n",
			[]string{"shadowgw.conf:2: [store] max-delay: must be from 0s to 1s, got 2s"}},
		{"plain amqp uplink", "[uplink]\nurl = amqp://b.example:5672\n",
			[]string{`shadowgw.conf:2: [uplink] url: scheme must be amqps (TLS), got "amqp"`}},
		{"uplink without scheme", "[uplink]\nurl = b.example:5671\n",
			[]string{`shadowgw.conf:2: [uplink] url: scheme must be amqps (TLS), got "b.example"`}},
		{"uplink with password", "[uplink]\nurl = amqps://gw:hunter2@b.example\n",
			[]string{"shadowgw.conf:2: [uplink] url: must not contain a user or password: set user and password-file instead"}},
		{"uplink without host", "[uplink]\nurl = amqps://:5671\n",
			[]string{"shadowgw.conf:2: [uplink] url: missing host: want amqps://HOST[:PORT]"}},
		{"uplink bad port", "[uplink]\nurl = amqps://b.example:0\n",
			[]string{`shadowgw.conf:2: [uplink] url: port must be a number from 1 to 65535, got "0"`}},
		{"uplink empty port", "[uplink]\nurl = amqps://b.example:\n",
			[]string{"shadowgw.conf:2: [uplink] url: empty port: want amqps://HOST[:PORT]"}},
		{"uplink path", "[uplink]\nurl = amqps://b.example/vhost\n",
			[]string{`shadowgw.conf:2: [uplink] url: path "/vhost" is not supported: want amqps://HOST[:PORT] (see address-prefix)`}},
		{"uplink query", "[uplink]\nurl = amqps://b.example?x=1\n",
			[]string{"shadowgw.conf:2: [uplink] url: query is not supported: want amqps://HOST[:PORT]"}},
		{"uplink not a URL", "[uplink]\nurl = amqps://b.example:5671%zz\n",
			[]string{`shadowgw.conf:2: [uplink] url: not a URL: invalid port ":5671%zz" after host`}},
		{"ca missing", "[uplink]\nurl = amqps://b.example\nca = " + missing + "\n",
			[]string{"shadowgw.conf:3: [uplink] ca: open " + missing + ": no such file or directory"}},
		{"ca not PEM", "[uplink]\nurl = amqps://b.example\nca = " + notPEM + "\n",
			[]string{"shadowgw.conf:3: [uplink] ca: " + notPEM + ": no PEM certificates"}},
		{"ca is a key", "[uplink]\nurl = amqps://b.example\nca = " + keyPEM + "\n",
			[]string{"shadowgw.conf:3: [uplink] ca: " + keyPEM + ": PEM block 1 is a PRIVATE KEY, want only CERTIFICATE blocks"}},
		{"ca bad certificate", "[uplink]\nurl = amqps://b.example\nca = " + badCert + "\n",
			[]string{"shadowgw.conf:3: [uplink] ca: " + badCert + ": certificate 1: x509: malformed certificate"}},
		{"bad server name", "[uplink]\nurl = amqps://b.example\nserver-name = b.example:5671\n",
			[]string{`shadowgw.conf:3: [uplink] server-name: want a host name or IP address, got "b.example:5671"`}},
		{"user without password file", "[uplink]\nurl = amqps://b.example\nuser = gw\n",
			[]string{"shadowgw.conf:3: [uplink] user: is set but password-file is not"}},
		{"password file without user", "[uplink]\nurl = amqps://b.example\npassword-file = " + pw + "\n",
			[]string{"shadowgw.conf:3: [uplink] password-file: is set but user is not"}},
		{"password file missing", "[uplink]\nurl = amqps://b.example\nuser = gw\npassword-file = " + missing + "\n",
			[]string{"shadowgw.conf:4: [uplink] password-file: stat " + missing + ": no such file or directory"}},
		{"password file is a directory", "[uplink]\nurl = amqps://b.example\nuser = gw\npassword-file = " + dir + "\n",
			[]string{"shadowgw.conf:4: [uplink] password-file: " + dir + " is not a regular file"}},
		{"in-flight zero", "[uplink]\nin-flight = 0\n",
			[]string{"shadowgw.conf:2: [uplink] in-flight: must be from 1 to 65536, got 0"}},
		{"uplink files unchecked without url", "[uplink]\nca = " + missing + "\nuser = gw\n", nil},
		{"duplicate device", "[device \"a\"]\npassword-hash = " + testHash + "\n\n[device \"a\"]\npassword-hash = " + testHash + "\n",
			[]string{`shadowgw.conf:4: [device "a"] duplicate device name (first defined on line 1)`}},
		{"device without hash", "[device \"a\"]\n",
			[]string{"shadowgw.conf:1: [device \"a\"] password-hash: missing: set it to the output of `shadowgw passwd`"}},
		{"device with malformed hash", "[device \"a\"]\npassword-hash = pbkdf2-sha256$300$abc\n",
			[]string{`shadowgw.conf:2: [device "a"] password-hash: malformed password hash: has 3 $-separated fields, want 4 (pbkdf2-sha256$ITERATIONS$SALT$HASH)`}},
		{"device with plain password as hash", "[device \"a\"]\npassword-hash = hunter2\n",
			[]string{`shadowgw.conf:2: [device "a"] password-hash: malformed password hash: does not start with "pbkdf2-sha256$"`}},
		{"device name with blank", "[device \"a b\"]\npassword-hash = " + testHash + "\n",
			[]string{`shadowgw.conf:1: [device "a b"] device name may contain only letters, digits and . _ - @, got ' '`}},
		{"empty device name", "[device \"\"]\npassword-hash = " + testHash + "\n",
			[]string{`shadowgw.conf:1: [device ""] device name must be 1 to 64 characters`}},
		{"log level", "[log]\nlevel = verbose\n",
			[]string{`shadowgw.conf:2: [log] level: want one of debug, info, warn, error, got "verbose"`}},
		{"metrics without port", "[metrics]\nlisten = localhost\n",
			[]string{`shadowgw.conf:2: [metrics] listen: want HOST:PORT or empty (off), got "localhost"`}},
		{"metrics bad port", "[metrics]\nlisten = 127.0.0.1:http\n",
			[]string{`shadowgw.conf:2: [metrics] listen: port must be a number from 0 to 65535, got "http"`}},
		{"metrics off", "[metrics]\nlisten =\n", nil},
		{"a complete good uplink", uplink, nil},
		{"syntax and validation errors together, in line order", "[log]\nlevel = loud\n[edge]\ncredit = x\nlisten = nope\n" + "[uplink]\nurl = amqp://b\n",
			[]string{
				`shadowgw.conf:2: [log] level: want one of debug, info, warn, error, got "loud"`,
				`shadowgw.conf:4: [edge] credit: want a non-negative whole number, got "x"`,
				`shadowgw.conf:5: [edge] listen: want HOST:PORT, got "nope"`,
				`shadowgw.conf:7: [uplink] url: scheme must be amqps (TLS), got "amqp"`,
			}},
	}
	t.Chdir(dir) // errors name the file as given: "shadowgw.conf"
	checkErrorCases(t, tests)
}

func TestValidateWithoutPositions(t *testing.T) {
	// A Config built in code has no file: errors name only section and field.
	c := Default()
	c.Edge.Credit = 0
	c.Devices = []Device{{Name: "x"}}
	got := errorLines(c.Validate())
	want := []string{
		"[edge] credit: must be from 1 to 65536, got 0",
		"[device \"x\"] password-hash: missing: set it to the output of `shadowgw passwd`",
	}
	if !slices.Equal(got, want) {
		t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestCheckNoFile(t *testing.T) {
	t.Chdir(t.TempDir())
	c, err := Check("", Flags{})
	if err != nil {
		t.Fatalf("Check(\"\") = %v", err)
	}
	if c.Edge.Listen != "127.0.0.1:5672" || c.File() != "" {
		t.Errorf("Check(\"\") = %+v, want the defaults", c)
	}
	if _, err := Check(filepath.Join(t.TempDir(), "missing.conf"), Flags{}); err == nil || !strings.Contains(err.Error(), "missing.conf") {
		t.Errorf("Check(missing) error = %v, want one naming the file", err)
	}
}

func TestWarnings(t *testing.T) {
	dir, ca, pw := testFiles(t)
	tests := []struct {
		name string
		text string
		mode os.FileMode
		want []string
	}{
		{"quiet", "[edge]\nallow-anonymous = false\n[device \"a\"]\npassword-hash = " + testHash + "\n" +
			"[uplink]\nurl = amqps://b.example\nca = " + ca + "\nuser = gw\npassword-file = " + pw + "\n", 0o600, nil},
		{"readable password file", "[edge]\n[uplink]\nurl = amqps://b.example\nuser = gw\npassword-file = " + pw + "\n", 0o644,
			[]string{"shadowgw.conf:5: [uplink] password-file: " + pw + " is accessible to group or others (mode 0644): chmod 600 it"}},
		{"anonymous on all addresses", "[edge]\nlisten = :5672\n", 0o600,
			[]string{"shadowgw.conf:2: [edge] listen: is not a loopback address and allow-anonymous is true: anyone who can reach it may send messages"}},
		{"anonymous with devices", "[edge]\nlisten = localhost:5672\nallow-anonymous = true\n[device \"a\"]\npassword-hash = " + testHash + "\n", 0o600,
			[]string{"shadowgw.conf:3: [edge] allow-anonymous: is true, so devices may also connect without the credentials of the [device] sections"}},
		{"uplink settings without url", "[uplink]\nuser = gw\nserver-name = x\n", 0o600,
			[]string{
				"shadowgw.conf:2: [uplink] user: is ignored: url is empty, so there is no uplink",
				"shadowgw.conf:3: [uplink] server-name: is ignored: url is empty, so there is no uplink",
			}},
		{"metrics on all addresses", "[metrics]\nlisten = :9464\n", 0o600,
			[]string{"shadowgw.conf:2: [metrics] listen: is not a loopback address: anyone who can reach it may read the gateway's metrics and status"}},
		{"metrics on localhost", "[metrics]\nlisten = localhost:9464\n", 0o600, nil},
		{"route budget above the store's", "[store]\nmax-messages = 100\n[route \"t\"]\naddresses = t/*\nmax-messages = 500\nmax-bytes = 1MiB\n", 0o600,
			[]string{"shadowgw.conf:5: [route \"t\"] max-messages: 500 is above the [store] max-messages of 100, which limits the route first"}},
	}
	t.Chdir(dir)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			writeFile(t, pw, "s3cret\n", tt.mode)
			writeFile(t, "shadowgw.conf", tt.text, 0o644)
			c, err := Check("shadowgw.conf", Flags{})
			if err != nil {
				t.Fatal(err)
			}
			if got := errorLines(c.Warnings().orNil()); !slices.Equal(got, tt.want) {
				t.Errorf("warnings:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}
