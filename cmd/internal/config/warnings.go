package config

import (
	"fmt"
	"io"
	"net"
	"os"
	"strings"
)

// maxPasswordFile bounds what UplinkPassword reads: a password file is one short line.
const maxPasswordFile = 4096

// UplinkPassword reads the uplink password from [uplink] password-file: its content
// without the trailing line break. The error names the file. It returns ErrNoPasswordFile
// when no password file is configured. See Warnings for the file's permissions.
func (c Config) UplinkPassword() (string, error) {
	name := c.Uplink.PasswordFile
	if name == "" {
		return "", fmt.Errorf("config: uplink password: %w", ErrNoPasswordFile)
	}
	f, err := os.Open(name)
	if err != nil {
		return "", fmt.Errorf("config: uplink password: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxPasswordFile+1))
	if err != nil {
		return "", fmt.Errorf("config: uplink password: read %s: %w", name, err)
	}
	if len(data) > maxPasswordFile {
		return "", fmt.Errorf("config: uplink password: %s is longer than %d bytes; want one line", name, maxPasswordFile)
	}
	pw := strings.TrimSuffix(string(data), "\n")
	pw = strings.TrimSuffix(pw, "\r")
	switch {
	case pw == "":
		return "", fmt.Errorf("config: uplink password: %s is empty", name)
	case strings.ContainsAny(pw, "\r\n"):
		return "", fmt.Errorf("config: uplink password: %s has more than one line", name)
	}
	return pw, nil
}

// Warnings returns problems that do not stop the gateway but deserve a log line: a
// password file other users can read, anonymous devices on a non-loopback address or
// alongside [device] sections, uplink settings that are unused because url is empty, a
// route budget above the store's total, and metrics on a non-loopback address. It reads the file system, so call it after Validate.
func (c Config) Warnings() Errors {
	var ws Errors
	u := c.Uplink
	if u.Enabled() && u.PasswordFile != "" {
		if fi, err := os.Stat(u.PasswordFile); err == nil && fi.Mode().Perm()&0o077 != 0 {
			ws = append(ws, c.problem("uplink", "password-file", "uplink.password-file", nil,
				"%s is accessible to group or others (mode %04o): chmod 600 it", u.PasswordFile, fi.Mode().Perm()))
		}
	}
	if !u.Enabled() {
		for _, f := range []struct{ name, value string }{
			{"ca", u.CA}, {"server-name", u.ServerName}, {"user", u.User}, {"password-file", u.PasswordFile},
		} {
			if f.value != "" {
				ws = append(ws, c.problem("uplink", f.name, key("uplink", f.name), nil, "is ignored: url is empty, so there is no uplink"))
			}
		}
	}
	if c.Edge.AllowAnonymous {
		if !isLoopback(c.Edge.Listen) {
			ws = append(ws, c.problem("edge", "listen", "edge.listen", nil,
				"is not a loopback address and allow-anonymous is true: anyone who can reach it may send messages"))
		}
		if len(c.Devices) > 0 {
			ws = append(ws, c.problem("edge", "allow-anonymous", "edge.allow-anonymous", nil,
				"is true, so devices may also connect without the credentials of the [device] sections"))
		}
	}
	for i, r := range c.Routes {
		for _, b := range []struct {
			field        string
			route, total uint64
		}{{"max-bytes", r.MaxBytes, c.Store.MaxBytes}, {"max-messages", r.MaxMessages, c.Store.MaxMessages}} {
			if b.total > 0 && b.route > b.total {
				ws = append(ws, c.problem(routeDisplay(r.Name), b.field, routeKey(i, b.field), nil,
					"%d is above the [store] %s of %d, which limits the route first", b.route, b.field, b.total))
			}
		}
	}
	if l := c.Metrics.Listen; l != "" && !isLoopback(l) {
		ws = append(ws, c.problem("metrics", "listen", "metrics.listen", nil,
			"is not a loopback address: anyone who can reach it may read the gateway's metrics and status"))
	}
	sortErrors(ws)
	return ws
}

// isLoopback reports whether a listen address accepts connections only from this host.
func isLoopback(listen string) bool {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
