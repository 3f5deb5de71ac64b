// Package credential hashes and verifies the passwords devices present to the edge server
// (SASL PLAIN), so the configuration file holds only a hash.
//
// A hash is a self-describing string:
//
//	pbkdf2-sha256$ITERATIONS$SALT$HASH
//
// with PBKDF2-HMAC-SHA256 from the standard library, a 16-byte random salt, a 32-byte
// derived key, and SALT and HASH in unpadded standard base64. The iteration count travels
// with each hash, so [Iterations] can change without invalidating existing hashes.
//
// One [Hash] or [Verify] costs about [Iterations] HMAC-SHA256 computations: a few
// milliseconds on a Raspberry Pi Zero, well under a millisecond on a Pi 4. That is cheap
// enough for every connection attempt and too cheap to protect a weak password from
// offline guessing: device passwords should be long and random. Functions in this package
// are safe for concurrent use.
package credential
