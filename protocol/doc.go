// Package protocol is syncnode's wire: the SyncMessage variants spoken on
// /spacedrive/sync/2.0.0, their deterministic CBOR encoding, varint-length
// framing with a size limit enforced before allocation, validation of every
// message, and the wire error codes. It knows nothing of the network or of
// storage. docs/PROTOCOL.md is its specification for other implementers.
package protocol
