package credential

import (
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
)

// Scheme is the first field of every hash this package writes.
const Scheme = "pbkdf2-sha256"

// Iterations is the PBKDF2 iteration count Hash uses.
//
// One iteration is two SHA-256 block computations plus HMAC bookkeeping: about 11,800
// ARMv6 instructions with Go's portable SHA-256 (Go has no SHA-256 assembly for 32-bit
// ARM), counted by running a GOARM=6 build under qemu-arm -cpu arm1176. The Pi Zero's
// single-issue ARM1176 at 1 GHz retires fewer than one instruction per cycle, so an
// iteration takes roughly 15 µs, and 300 iterations make a verification cost about
// 4–5 ms (about 6 ms on a 700 MHz Pi 1). BenchmarkVerify measures it on real hardware.
// This is far below the counts recommended for human passwords; see the package doc.
const Iterations = 300

const (
	saltLen = 16
	keyLen  = sha256.Size

	// maxIterations bounds the count accepted from a hash string, so a typo cannot make
	// each connection attempt cost minutes. A million iterations take ~15 s on a Pi Zero.
	maxIterations = 1_000_000
)

var b64 = base64.RawStdEncoding.Strict()

// Hash returns a new self-describing hash of password with a random salt.
func Hash(password string) (string, error) {
	if password == "" {
		return "", fmt.Errorf("credential: hash: %w", ErrEmptyPassword)
	}
	salt := make([]byte, saltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("credential: hash: salt: %w", err)
	}
	key, err := pbkdf2.Key(sha256.New, password, salt, Iterations, keyLen)
	if err != nil {
		return "", fmt.Errorf("credential: hash: %w", err)
	}
	return Scheme + "$" + strconv.Itoa(Iterations) + "$" + b64.EncodeToString(salt) + "$" + b64.EncodeToString(key), nil
}

// Verify reports whether password matches hash. The derived keys are compared in
// constant time. The error, wrapping ErrMalformed, is for a hash that cannot be parsed;
// a wrong password is (false, nil).
func Verify(hash, password string) (bool, error) {
	p, err := parse(hash)
	if err != nil {
		return false, fmt.Errorf("credential: verify: %w", err)
	}
	key, err := pbkdf2.Key(sha256.New, password, p.salt, p.iterations, len(p.key))
	if err != nil {
		return false, fmt.Errorf("credential: verify: %w", err)
	}
	return subtle.ConstantTimeCompare(key, p.key) == 1, nil
}

// Parse checks that hash is well formed, for validating a configuration before any
// device connects. The error wraps ErrMalformed and names the faulty field; it never
// contains the salt or the key.
func Parse(hash string) error {
	_, err := parse(hash)
	return err
}

type parsed struct {
	iterations int
	salt, key  []byte
}

func parse(hash string) (parsed, error) {
	fields := strings.Split(hash, "$")
	if fields[0] != Scheme {
		// Never quote the input: it may be a password pasted by mistake, and errors end
		// up in logs.
		return parsed{}, malformed("does not start with %q", Scheme+"$")
	}
	if len(fields) != 4 {
		return parsed{}, malformed("has %d $-separated fields, want 4 (%s$ITERATIONS$SALT$HASH)", len(fields), Scheme)
	}
	var p parsed
	n, err := parseIterations(fields[1])
	if err != nil {
		return parsed{}, err
	}
	p.iterations = n
	if p.salt, err = b64.DecodeString(fields[2]); err != nil {
		return parsed{}, malformed("salt is not unpadded standard base64: %v", err)
	}
	if len(p.salt) < saltLen || len(p.salt) > 64 {
		return parsed{}, malformed("salt is %d bytes, want %d to 64", len(p.salt), saltLen)
	}
	if p.key, err = b64.DecodeString(fields[3]); err != nil {
		return parsed{}, malformed("key is not unpadded standard base64: %v", err)
	}
	if len(p.key) != keyLen {
		return parsed{}, malformed("key is %d bytes, want %d", len(p.key), keyLen)
	}
	return p, nil
}

func parseIterations(s string) (int, error) {
	if s == "" {
		return 0, malformed("iteration count is empty")
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, malformed("iteration count is not a decimal number")
		}
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > maxIterations {
		return 0, malformed("iteration count %.20s is out of range 1 to %d", s, maxIterations)
	}
	return n, nil
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, args...)...)
}
