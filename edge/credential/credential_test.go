package credential

import (
	"errors"
	"strconv"
	"strings"
	"testing"
)

// knownHash is PBKDF2-HMAC-SHA256("correct horse", "0123456789abcdef", 300, 32) computed
// with Python's hashlib, so the format and the derivation are checked against another
// implementation.
const knownHash = "pbkdf2-sha256$300$MDEyMzQ1Njc4OWFiY2RlZg$pEpCrRTjO+Cudy/eCXGQseczxKzQfoeGNe/jGuieQIc"

func TestRoundTrip(t *testing.T) {
	for _, pw := range []string{"a", "correct horse battery staple", "пароль 🔑", strings.Repeat("x", 1000)} {
		h, err := Hash(pw)
		if err != nil {
			t.Fatalf("Hash(%q): %v", pw, err)
		}
		if err := Parse(h); err != nil {
			t.Errorf("Parse(Hash(%q)) = %v, want nil", pw, err)
		}
		ok, err := Verify(h, pw)
		if err != nil || !ok {
			t.Errorf("Verify(Hash(%q), same) = %v, %v; want true, nil", pw, ok, err)
		}
	}
}

func TestHashFormat(t *testing.T) {
	h, err := Hash("secret")
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Split(h, "$")
	if len(f) != 4 || f[0] != Scheme || f[1] != strconv.Itoa(Iterations) {
		t.Fatalf("Hash = %q, want %s$%d$SALT$HASH", h, Scheme, Iterations)
	}
	if strings.Contains(h, "=") {
		t.Errorf("Hash = %q, want base64 without padding", h)
	}
	h2, err := Hash("secret")
	if err != nil {
		t.Fatal(err)
	}
	if h == h2 {
		t.Errorf("two hashes of the same password are equal (%q): salt is not random", h)
	}
}

func TestKnownAnswer(t *testing.T) {
	ok, err := Verify(knownHash, "correct horse")
	if err != nil || !ok {
		t.Errorf("Verify(knownHash, right) = %v, %v; want true, nil", ok, err)
	}
	for _, pw := range []string{"", "correct horsE", "correct horse ", "correct hors"} {
		ok, err := Verify(knownHash, pw)
		if err != nil || ok {
			t.Errorf("Verify(knownHash, %q) = %v, %v; want false, nil", pw, ok, err)
		}
	}
}

func TestWrongPassword(t *testing.T) {
	h, err := Hash("right")
	if err != nil {
		t.Fatal(err)
	}
	for _, pw := range []string{"wrong", "", "Right", "right\n"} {
		ok, err := Verify(h, pw)
		if err != nil || ok {
			t.Errorf("Verify(h, %q) = %v, %v; want false, nil", pw, ok, err)
		}
	}
}

func TestHashEmptyPassword(t *testing.T) {
	if _, err := Hash(""); !errors.Is(err, ErrEmptyPassword) {
		t.Errorf("Hash(\"\") error = %v, want ErrEmptyPassword", err)
	}
}

func TestHashNeverContainsPassword(t *testing.T) {
	// Long passwords of characters that are all base64 digits give the encoding the most
	// chances to contain them by accident.
	for _, pw := range []string{"hunter2hunter2", "AAAAAAAAAAAA", strings.Repeat("ab", 40)} {
		for range 20 {
			h, err := Hash(pw)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(h, pw) {
				t.Fatalf("Hash(%q) = %q contains the password", pw, h)
			}
		}
	}
}

func TestMalformed(t *testing.T) {
	const salt = "MDEyMzQ1Njc4OWFiY2RlZg"
	const key = "pEpCrRTjO+Cudy/eCXGQseczxKzQfoeGNe/jGuieQIc"
	tests := []struct {
		name string
		hash string
		want string // substring of the error message
	}{
		{"empty", "", `does not start with "pbkdf2-sha256$"`},
		{"plain password", "hunter2", `does not start with "pbkdf2-sha256$"`},
		{"password with dollar", "hun$ter2", `does not start with "pbkdf2-sha256$"`},
		{"other scheme", "bcrypt$2b$10$abc", `does not start with "pbkdf2-sha256$"`},
		{"upper case scheme", "PBKDF2-SHA256$300$" + salt + "$" + key, `does not start with`},
		{"too few fields", "pbkdf2-sha256$300$" + salt, "has 3 $-separated fields, want 4"},
		{"too many fields", knownHash + "$x", "has 5 $-separated fields, want 4"},
		{"empty iterations", "pbkdf2-sha256$$" + salt + "$" + key, "iteration count is empty"},
		{"letters in iterations", "pbkdf2-sha256$3e2$" + salt + "$" + key, "iteration count is not a decimal number"},
		{"signed iterations", "pbkdf2-sha256$+300$" + salt + "$" + key, "iteration count is not a decimal number"},
		{"zero iterations", "pbkdf2-sha256$0$" + salt + "$" + key, "iteration count 0 is out of range 1 to 1000000"},
		{"too many iterations", "pbkdf2-sha256$1000001$" + salt + "$" + key, "out of range"},
		{"overflowing iterations", "pbkdf2-sha256$99999999999999999999999$" + salt + "$" + key, "out of range"},
		{"salt not base64", "pbkdf2-sha256$300$!!!!$" + key, "salt is not unpadded standard base64"},
		{"salt padded", "pbkdf2-sha256$300$" + salt + "==$" + key, "salt is not unpadded standard base64"},
		{"salt url alphabet", "pbkdf2-sha256$300$" + salt + "$" + strings.ReplaceAll(key, "/", "_"), "key is not unpadded standard base64"},
		{"salt short", "pbkdf2-sha256$300$MDEyMzQ1Njc$" + key, "salt is 8 bytes, want 16 to 64"},
		{"salt empty", "pbkdf2-sha256$300$$" + key, "salt is 0 bytes"},
		{"key short", "pbkdf2-sha256$300$" + salt + "$" + salt, "key is 16 bytes, want 32"},
		{"key empty", "pbkdf2-sha256$300$" + salt + "$", "key is 0 bytes, want 32"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Parse(tt.hash)
			if err == nil {
				t.Fatalf("Parse(%q) = nil, want error containing %q", tt.hash, tt.want)
			}
			if !errors.Is(err, ErrMalformed) {
				t.Errorf("Parse error %v does not wrap ErrMalformed", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Parse(%q) error = %q, want it to contain %q", tt.hash, err, tt.want)
			}
			if strings.Contains(err.Error(), "hun") || strings.Contains(err.Error(), salt) {
				t.Errorf("Parse error %q leaks part of the input", err)
			}
			ok, verr := Verify(tt.hash, "correct horse")
			if ok || !errors.Is(verr, ErrMalformed) {
				t.Errorf("Verify(%q) = %v, %v; want false and an ErrMalformed error", tt.hash, ok, verr)
			}
		})
	}
}

// BenchmarkVerify measures one verification at the default cost. Run it on the target
// board (GOARCH=arm GOARM=6 for a Pi Zero) before changing Iterations.
func BenchmarkVerify(b *testing.B) {
	h, err := Hash("correct horse battery staple")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if ok, err := Verify(h, "correct horse battery staple"); !ok || err != nil {
			b.Fatal(ok, err)
		}
	}
}
