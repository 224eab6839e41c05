// Package protocol is syncnode's wire: the SyncMessage variants spoken on
// /spacedrive/sync/2.0.0, their deterministic CBOR encoding, varint-length
// framing with a size limit enforced before allocation, validation of every
// message, and the wire error codes. It knows nothing of the network or of
// storage. docs/PROTOCOL.md is its specification for other implementers.
//
// # Use
//
// Reading a stream:
//
//	r := protocol.NewReader(stream, protocol.DefaultMaxFrameSize)
//	m, err := r.ReadMessage() // ReadFrame + Decode
//	switch {
//	case err == io.EOF: // clean end, between frames
//	case err != nil:
//		// Answer protocol.NewError(lib, err) if the stream is still in
//		// step (a Decode error), then reset. CodeOf(err) says which code.
//	}
//
// Writing: protocol.NewWriter(stream, max).WriteMessage(m) validates, encodes
// and writes one frame in one Write call, or returns ErrInvalid or
// ErrFrameTooLarge having written nothing (split the batch or page then).
//
// A message returned by Decode (and so by ReadMessage) has passed Validate:
// its shape, limits and internal consistency (for example a StateBatch's
// records all belong to its device_id, in strictly increasing versions) are
// guaranteed. What needs context is left to the caller: that the library is
// the stream's, that claimed devices are the authenticated peer (ownership),
// membership, registered model types, clock skew, and whether the message is
// expected at this point of the exchange. Each has its sentinel error and
// wire code (ErrOwnership, ErrNotMember, ...); CodeOf and ErrorOf translate,
// and NewError builds the Error message.
//
// Decoded messages own their memory (nothing aliases the frame). Payloads
// (data) are cbor.RawMessage: one well-formed CBOR data item, carried
// verbatim, never null (a null or absent payload decodes as nil). Empty lists
// decode as nil.
//
// All functions are safe for concurrent use; a Reader or Writer is not.
package protocol
