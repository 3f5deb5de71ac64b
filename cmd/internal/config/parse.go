package config

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"unicode/utf8"
)

// Load returns Default overlaid with the configuration file at path. It reports every
// syntax problem, unknown section or key, duplicate key and malformed value in the file
// as Errors; it does not validate (see Validate and Check). A file that cannot be read
// gives an error naming the file.
func Load(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	c, errs := parse(path, data)
	if len(errs) > 0 {
		return Config{}, errs
	}
	return c, nil
}

// parser holds the state of reading one file.
type parser struct {
	c    Config
	file string
	dir  string // directory relative paths in the file are relative to
	errs Errors

	sawHeader bool   // a section header, good or bad, was seen
	section   string // current section name, "" before the first or after a bad header
	display   string // current section as written in errors: `edge`, `device "x"`
	device    int    // index in c.Devices of the current [device] section
	input     int    // index in c.Inputs of the current [input] section
	route     int    // index in c.Routes of the current [route] section
}

// parse reads data, named file in errors, over Default. It returns the configuration as
// far as it could be read along with the problems, so that Check can validate what was
// read and report everything at once.
func parse(file string, data []byte) (Config, Errors) {
	p := &parser{c: Default(), file: file, dir: filepath.Dir(file), device: -1, input: -1, route: -1}
	p.c.file = file
	p.c.origins = make(map[string]origin)
	data = bytes.TrimPrefix(data, []byte("\uFEFF"))
	for i, line := range strings.Split(string(data), "\n") {
		p.line(i+1, strings.TrimSuffix(line, "\r"))
	}
	p.c.fillInputDefaults()
	return p.c, p.errs
}

func (p *parser) errorf(line int, section, field, format string, args ...any) {
	p.errs = append(p.errs, &Error{File: p.file, Line: line, Section: section, Field: field, Msg: fmt.Sprintf(format, args...)})
}

func (p *parser) line(n int, line string) {
	if !utf8.ValidString(line) {
		p.errorf(n, "", "", "line is not valid UTF-8")
		return
	}
	s := strings.Trim(line, " \t")
	switch {
	case s == "" || s[0] == '#' || s[0] == ';':
	case s[0] == '[':
		p.header(n, s)
	default:
		p.keyValue(n, s)
	}
}

// header handles a section header: [name] or [name "subsection"].
func (p *parser) header(n int, s string) {
	p.sawHeader = true
	p.section, p.display = "", ""
	i := 1
	for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
		i++
	}
	start := i
	for i < len(s) && isNameByte(s[i]) {
		i++
	}
	name := s[start:i]
	for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
		i++
	}
	var sub string
	hasSub := i < len(s) && s[i] == '"'
	if hasSub {
		var ok bool
		if sub, i, ok = unquote(s, i+1); !ok {
			p.errorf(n, "", "", "section header: unterminated or malformed quoted name")
			return
		}
		for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
			i++
		}
	}
	if i >= len(s) || s[i] != ']' {
		if name == "" {
			p.errorf(n, "", "", "malformed section header: want [NAME] or [NAME \"SUBNAME\"]")
		} else {
			p.errorf(n, "", "", "malformed section header [%s: want [NAME] or [NAME \"SUBNAME\"]", name)
		}
		return
	}
	if rest := strings.TrimLeft(s[i+1:], " \t"); rest != "" && rest[0] != '#' && rest[0] != ';' {
		p.errorf(n, "", "", "unexpected text after section header: %q", rest)
		return
	}
	if name == "" {
		p.errorf(n, "", "", "section header without a name")
		return
	}

	if name == deviceSection {
		if !hasSub {
			p.errorf(n, name, "", "needs a device name: [device \"NAME\"]")
			return
		}
		p.c.Devices = append(p.c.Devices, Device{Name: sub})
		p.device = len(p.c.Devices) - 1
		p.c.origins[deviceKey(p.device, "")] = origin{line: n}
		p.section, p.display = name, deviceDisplay(sub)
		return
	}
	if name == inputSection {
		if !hasSub {
			p.errorf(n, name, "", "needs an input name: [input \"NAME\"]")
			return
		}
		p.c.Inputs = append(p.c.Inputs, Input{Name: sub})
		p.input = len(p.c.Inputs) - 1
		p.c.origins[inputKey(p.input, "")] = origin{line: n}
		p.section, p.display = name, inputDisplay(sub)
		return
	}
	if name == routeSection {
		if !hasSub {
			p.errorf(n, name, "", "needs a route name: [route \"NAME\"]")
			return
		}
		p.c.Routes = append(p.c.Routes, Route{Name: sub})
		p.route = len(p.c.Routes) - 1
		p.c.origins[routeKey(p.route, "")] = origin{line: n}
		p.section, p.display = name, routeDisplay(sub)
		return
	}
	known := false
	for _, sec := range sections {
		known = known || sec.name == name
	}
	if !known {
		hint := suggest(name, sectionNames())
		if sec, sub, ok := strings.Cut(name, "."); ok && (sec == deviceSection || sec == inputSection || sec == routeSection) && !hasSub {
			hint = fmt.Sprintf(": write [%s %q]", sec, sub) // git's old subsection syntax
		}
		p.errorf(n, "", "", "unknown section [%s]%s", name, hint)
		return
	}
	if hasSub {
		p.errorf(n, name, "", "section takes no name, got %q", sub)
		return
	}
	p.section, p.display = name, name
}

// keyValue handles "key = value" in the current section.
func (p *parser) keyValue(n int, s string) {
	i := 0
	for i < len(s) && isNameByte(s[i]) {
		i++
	}
	name := s[:i]
	if name == "" {
		p.errorf(n, p.display, "", "want \"key = value\", got %q", s)
		return
	}
	rest := strings.TrimLeft(s[i:], " \t")
	if rest == "" || rest[0] != '=' {
		p.errorf(n, p.display, name, "want \"key = value\", missing \"=\"")
		return
	}
	value, err := parseValue(rest[1:])
	if err != nil {
		p.errorf(n, p.display, name, "%v", err)
		return
	}

	switch p.section {
	case "":
		// Keys under a faulty header are skipped: the header was reported.
		if !p.sawHeader {
			p.errorf(n, "", name, "key outside of any section; put it under a [SECTION] header")
		}
	case deviceSection:
		p.setDevice(n, name, value)
	case inputSection:
		p.setInput(n, name, value)
	case routeSection:
		p.setRoute(n, name, value)
	default:
		p.set(n, name, value)
	}
}

func (p *parser) set(n int, name, value string) {
	f, ok := lookupField(p.section, name)
	p.assign(n, name, key(p.section, name), ok, f.isPath, value, func(v string) error { return f.set(&p.c, v) })
}

func (p *parser) setDevice(n int, name, value string) {
	f, ok := lookupDeviceField(name)
	p.assign(n, name, deviceKey(p.device, name), ok, false, value, func(v string) error { return f.set(&p.c.Devices[p.device], v) })
}

func (p *parser) setInput(n int, name, value string) {
	f, ok := lookupInputField(name)
	p.assign(n, name, inputKey(p.input, name), ok, f.isPath, value, func(v string) error { return f.set(&p.c.Inputs[p.input], v) })
}

func (p *parser) setRoute(n int, name, value string) {
	f, ok := lookupRouteField(name)
	p.assign(n, name, routeKey(p.route, name), ok, false, value, func(v string) error { return f.set(&p.c.Routes[p.route], v) })
}

// assign stores the value of key name on line n (k is its key in origins): it reports
// an unknown key (known false) or a duplicate, remembers the line, resolves a relative
// path against the file's directory, and sets the value with set; a value set rejects
// is reported and remembered as rejected, so that Validate does not call it missing.
func (p *parser) assign(n int, name, k string, known, isPath bool, value string, set func(string) error) {
	if !known {
		p.unknownKey(n, name)
		return
	}
	if o, dup := p.c.origins[k]; dup {
		p.errorf(n, p.display, name, "duplicate key (first set on line %d)", o.line)
		return
	}
	p.c.origins[k] = origin{line: n}
	if isPath && value != "" && !filepath.IsAbs(value) {
		value = filepath.Join(p.dir, value)
	}
	if err := set(value); err != nil {
		p.errorf(n, p.display, name, "%v", err)
		p.c.origins[k] = origin{line: n, rejected: true}
	}
}

func (p *parser) unknownKey(n int, name string) {
	if why, ok := misplaced[key(p.section, name)]; ok {
		p.errorf(n, p.display, name, "%s", why)
		return
	}
	var names []string
	switch p.section {
	case deviceSection:
		for _, f := range deviceFields {
			names = append(names, f.name)
		}
	case inputSection:
		for _, f := range inputFields {
			names = append(names, f.name)
		}
	case routeSection:
		for _, f := range routeFields {
			names = append(names, f.name)
		}
	default:
		for _, sec := range sections {
			if sec.name != p.section {
				continue
			}
			for _, f := range sec.fields {
				names = append(names, f.name)
			}
		}
	}
	hint := suggest(name, names)
	if hint == "" {
		// The key may belong to another section.
		for _, sec := range sections {
			if _, ok := lookupField(sec.name, name); ok && sec.name != p.section {
				hint = fmt.Sprintf(" (it belongs in [%s])", sec.name)
			}
		}
		if _, ok := lookupRouteField(name); ok && hint == "" && p.section != routeSection && p.section != deviceSection && p.section != inputSection {
			hint = ` (it belongs in a [route "NAME"] section)`
		}
	}
	p.errorf(n, p.display, "", "unknown key %q%s", name, hint)
}

func sectionNames() []string {
	names := []string{deviceSection, inputSection, routeSection}
	for _, s := range sections {
		names = append(names, s.name)
	}
	return names
}

// isNameByte reports whether b may appear in a section or key name. Only lowercase names
// are known; accepting more lets errors say "unknown key" rather than "syntax error".
func isNameByte(b byte) bool {
	return 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9' || b == '-' || b == '_' || b == '.'
}

// parseValue returns the value of the text after "=": surrounding blanks are dropped; a
// "#" or ";" at the start or after a blank begins a comment; double quotes keep blanks,
// "#" and ";" and understand the escapes \" \\ \n \t.
func parseValue(s string) (string, error) {
	var b strings.Builder
	blanks := "" // unquoted blanks not yet known to be inside the value
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t':
			blanks += string(c)
			i++
		case (c == '#' || c == ';') && (i == 0 || s[i-1] == ' ' || s[i-1] == '\t'):
			return b.String(), nil
		case c == '"':
			if b.Len() > 0 {
				b.WriteString(blanks)
			}
			blanks = ""
			q, next, ok := unquote(s, i+1)
			if !ok {
				return "", errBadQuote
			}
			b.WriteString(q)
			i = next
		default:
			if b.Len() > 0 {
				b.WriteString(blanks)
			}
			blanks = ""
			b.WriteByte(c)
			i++
		}
	}
	return b.String(), nil
}

// unquote reads a quoted string from s starting after its opening quote. It returns the
// unescaped text, the index after the closing quote, and whether it was well formed.
func unquote(s string, i int) (string, int, bool) {
	var b strings.Builder
	for ; i < len(s); i++ {
		switch c := s[i]; c {
		case '"':
			return b.String(), i + 1, true
		case '\\':
			if i+1 >= len(s) {
				return "", 0, false
			}
			i++
			switch s[i] {
			case '"', '\\':
				b.WriteByte(s[i])
			case 'n':
				b.WriteByte('\n')
			case 't':
				b.WriteByte('\t')
			default:
				return "", 0, false
			}
		default:
			b.WriteByte(c)
		}
	}
	return "", 0, false
}
