// Package config reads, checks and prints shadowgw's one configuration file.
//
// The configuration is a Config: the embedded Default, overlaid by the file (Load),
// overlaid by command-line flags (Flags), then checked (Validate). Check does all four
// and is what the shadowgw command calls. Every problem is reported, not just the first,
// as Errors: one line each, naming the file and line, or the flag, and the field:
//
//	shadowgw.conf:12: [uplink] url: scheme must be amqps (TLS), got "amqp"
//	flag --uplink-ca: [uplink] ca: open ca.pem: no such file or directory
//
// # File format
//
// The format is a small subset of git-config, parsed here:
//
//   - A line is blank, a comment, a section header or "key = value". Surrounding blanks
//     are ignored; lines may end in LF or CRLF; the file is UTF-8.
//   - A comment starts with # or ; at the start of a line, or after a blank in a value.
//   - Section headers are [edge], [store], [uplink], [log], [metrics] and, once per device,
//     [device "NAME"], once per sensor or serial line wired to the gateway,
//     [input "NAME"], and once per queue of the store, [route "NAME"]. A section may
//     appear more than once, except a [route]; a key may not.
//   - A value runs to the end of the line or a comment. Double quotes keep blanks, # and
//     ; and understand \" \\ \n \t. An empty value is allowed where the field allows it.
//   - Booleans are true or false. Durations are Go durations: 500ms, 60s, 5m. Sizes are
//     bytes, optionally with a unit of KiB, MiB or GiB (1024-based): 65536, 64KiB.
//   - Relative paths are relative to the directory of the file.
//   - Unknown sections and keys are errors, with a suggestion for a likely typo.
//
// Secrets never appear in the file: the uplink password is read from password-file by
// Config.UplinkPassword, and devices are listed with password hashes (package
// credential). String and LogValue redact the hashes.
//
// Nothing in this package logs; Config.Warnings returns what deserves a warning.
package config
