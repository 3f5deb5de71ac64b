// Package packet encodes and decodes MQTT control packets, versions 3.1.1 (OASIS
// Standard, 29 October 2014) and 5.0 (OASIS Standard, 7 March 2019).
//
// It knows the wire format only: fixed header and Remaining Length, the variable header
// and payload of each packet type, MQTT 5 properties, and the well-formedness rules the
// specifications state for them (reserved flags, UTF-8 strings, minimal variable byte
// integers, which property may appear in which packet, and once). It never logs, never
// blocks on anything but the reader it is given, and knows nothing of sessions or of the
// store; package mqtt holds the session state machine.
//
// Decoding errors are *Error values carrying the MQTT 5 reason code the server answers
// with: 0x81 Malformed Packet, 0x82 Protocol Error or 0x95 Packet too large. A 3.1.1
// server closes the connection instead (3.1.1 §4.8). Nothing in this package is safe
// for concurrent use unless stated; decoded packets alias the body they were decoded
// from.
package packet
