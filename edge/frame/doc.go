// Package frame decodes and encodes AMQP 1.0 frames (§2.3) and the bodies they carry:
// the nine transport performatives (§2.7), the SASL frames (§5.3.3), the delivery states
// (§3.4) and the error type (§2.8.14).
//
// Decoding is strict about structure (a performative is a described list with the right
// descriptor, mandatory fields present, every length checked) and lenient about content
// the gateway does not use, which it skips or keeps as raw encodings. It never logs and
// knows nothing about connections; the caller maps its errors to AMQP error conditions.
package frame
