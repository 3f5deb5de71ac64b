// Package codec encodes and decodes the AMQP 1.0 type system (AMQP 1.0 part 1, "Types",
// §1.2–§1.6): primitive types, described types and the compound list, map and array
// encodings.
//
// It is the lowest layer of the device-facing server and knows nothing about frames,
// connections or the store. A [Reader] decodes from a byte slice it does not own and never
// allocates more than the input can justify: every length and element count is checked
// against the bytes that remain before anything is allocated, and nesting is limited, so
// hostile input costs at most a few times its own size. Errors are *[Error] values naming
// the offset, the type code and the field.
//
// A [Writer] appends encodings to a byte slice. Neither type is safe for concurrent use.
package codec
