package config

import (
	"errors"
	"io/fs"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
)

func TestUplinkPassword(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name    string
		content string
		want    string
		wantErr string // substring; the file's path is checked separately
	}{
		{"trailing newline", "s3cret\n", "s3cret", ""},
		{"trailing CRLF", "s3cret\r\n", "s3cret", ""},
		{"no newline", "s3cret", "s3cret", ""},
		{"blanks are kept", " s3 cret \n", " s3 cret ", ""},
		{"empty", "", "", "is empty"},
		{"only a newline", "\n", "", "is empty"},
		{"two lines", "a\nb\n", "", "has more than one line"},
		{"too long", strings.Repeat("x", maxPasswordFile+1), "", "longer than 4096 bytes"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name := filepath.Join(dir, "pw"+string(rune('a'+i)))
			writeFile(t, name, tt.content, 0o600)
			c := Default()
			c.Uplink.PasswordFile = name
			got, err := c.UplinkPassword()
			if tt.wantErr == "" {
				if err != nil || got != tt.want {
					t.Errorf("UplinkPassword() = %q, %v; want %q", got, err, tt.want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), name) {
				t.Errorf("UplinkPassword() error = %v, want one containing %q and %s", err, tt.wantErr, name)
			}
			if strings.Contains(err.Error(), "xxxx") {
				t.Errorf("error contains the file's content: %v", err)
			}
		})
	}

	c := Default()
	if _, err := c.UplinkPassword(); !errors.Is(err, ErrNoPasswordFile) {
		t.Errorf("UplinkPassword() without a file: error = %v, want ErrNoPasswordFile", err)
	}
	c.Uplink.PasswordFile = filepath.Join(dir, "missing")
	if _, err := c.UplinkPassword(); !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), c.Uplink.PasswordFile) {
		t.Errorf("UplinkPassword() with a missing file: error = %v", err)
	}
}

func TestUplinkAddr(t *testing.T) {
	tests := []struct {
		url, serverName, addr, tlsName string
	}{
		{"", "", "", ""},
		{"amqps://broker.example", "", "broker.example:5671", "broker.example"},
		{"amqps://broker.example:5999/", "", "broker.example:5999", "broker.example"},
		{"amqps://[2001:db8::1]", "", "[2001:db8::1]:5671", "2001:db8::1"},
		{"amqps://10.0.0.1:5671", "broker.example", "10.0.0.1:5671", "broker.example"},
	}
	for _, tt := range tests {
		u := Uplink{URL: tt.url, ServerName: tt.serverName}
		if got := u.Addr(); got != tt.addr {
			t.Errorf("Uplink{URL: %q}.Addr() = %q, want %q", tt.url, got, tt.addr)
		}
		if got := u.TLSServerName(); got != tt.tlsName {
			t.Errorf("Uplink{URL: %q, ServerName: %q}.TLSServerName() = %q, want %q", tt.url, tt.serverName, got, tt.tlsName)
		}
		if got := u.Enabled(); got != (tt.url != "") {
			t.Errorf("Uplink{URL: %q}.Enabled() = %v", tt.url, got)
		}
	}
}

func TestSlogLevel(t *testing.T) {
	for level, want := range map[string]slog.Level{
		"debug": slog.LevelDebug, "info": slog.LevelInfo, "warn": slog.LevelWarn, "error": slog.LevelError,
	} {
		if got := (Log{Level: level}).SlogLevel(); got != want {
			t.Errorf("SlogLevel(%q) = %v, want %v", level, got, want)
		}
	}
}

func TestErrorsUnwrap(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "ca.pem")
	c := Default()
	c.Uplink.URL = "amqps://b.example"
	c.Uplink.CA = missing
	c.Log.Level = "loud"
	err := c.Validate()
	var errs Errors
	if !errors.As(err, &errs) || len(errs) != 2 {
		t.Fatalf("Validate() = %v, want two Errors", err)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("errors.Is(%v, fs.ErrNotExist) = false", err)
	}
	var e *Error
	if !errors.As(err, &e) || e.Section != "uplink" || e.Field != "ca" {
		t.Errorf("errors.As(*Error) = %+v, want the [uplink] ca problem", e)
	}
	if (Errors)(nil).orNil() != nil {
		t.Error("empty Errors.orNil() != nil")
	}
}
