package protocol

import (
	"bytes"
	"fmt"

	"github.com/fxamacker/cbor/v2"
)

// The CBOR modes are built once; they are immutable and safe for concurrent
// use.
var (
	// encMode writes RFC 8949 §4.2.1 core deterministic CBOR: shortest
	// integer and length heads, definite lengths, map keys sorted by their
	// encoded bytes, shortest floats. Tags are refused (also inside
	// payloads) and nil lists are written as empty arrays, as serde writes
	// an empty Vec.
	encMode = mustEncMode()
	// bodyDecMode decodes a message body: the value of the outer one-key
	// map, one level below the frame's top, hence MaxNesting-1. checkFrame
	// has walked the frame before, with stricter rules.
	bodyDecMode = mustDecMode(MaxNesting - 1)
)

func mustEncMode() cbor.UserBufferEncMode {
	opts := cbor.CoreDetEncOptions()
	opts.TagsMd = cbor.TagsForbidden
	opts.NilContainers = cbor.NilContainerAsEmpty
	// A uuid.UUID ([16]byte) is written as a 16-byte byte string by the
	// array rule rather than through its MarshalBinary, which would
	// allocate for every UUID; the bytes are the same.
	opts.ByteArray = cbor.ByteArrayToByteSlice
	opts.BinaryMarshaler = cbor.BinaryMarshalerNone
	opts.TextMarshaler = cbor.TextMarshalerNone
	em, err := opts.UserBufferEncMode()
	if err != nil {
		panic("protocol: building CBOR encoding mode: " + err.Error())
	}
	return em
}

func mustDecMode(nesting int) cbor.DecMode {
	dm, err := cbor.DecOptions{
		// Duplicate keys anywhere in the message body are an error, also
		// two unknown fields with the same name.
		DupMapKey:        cbor.DupMapKeyEnforcedAPF,
		MaxNestedLevels:  nesting,
		MaxArrayElements: MaxCollectionSize,
		MaxMapPairs:      MaxCollectionSize,
		IndefLength:      cbor.IndefLengthForbidden,
		TagsMd:           cbor.TagsForbidden,
		UTF8:             cbor.UTF8RejectInvalid,
		// "library_id" only; "Library_ID" is an unknown field.
		FieldNameMatching: cbor.FieldNameMatchingCaseSensitive,
		// uuid.UUID is decoded by its UnmarshalBinary, which refuses a byte
		// string that is not exactly 16 bytes long.
		BinaryUnmarshaler: cbor.BinaryUnmarshalerByteString,
		// Unknown fields are ignored, for forward compatibility: a newer
		// peer may add optional fields. They must still be well-formed and
		// within the limits.
		ExtraReturnErrors: cbor.ExtraDecErrorNone,
	}.DecMode()
	if err != nil {
		panic("protocol: building CBOR decoding mode: " + err.Error())
	}
	return dm
}

// envelope is the externally tagged form of a message: a CBOR map with one
// key, the variant name, whose value is the message body. Exactly one field
// is set.
type envelope struct {
	StateChange          *StateChange          `cbor:"StateChange,omitempty"`
	StateBatch           *StateBatch           `cbor:"StateBatch,omitempty"`
	StateRequest         *StateRequest         `cbor:"StateRequest,omitempty"`
	StateResponse        *StateResponse        `cbor:"StateResponse,omitempty"`
	SharedChange         *SharedChange         `cbor:"SharedChange,omitempty"`
	SharedChangeBatch    *SharedChangeBatch    `cbor:"SharedChangeBatch,omitempty"`
	SharedChangeRequest  *SharedChangeRequest  `cbor:"SharedChangeRequest,omitempty"`
	SharedChangeResponse *SharedChangeResponse `cbor:"SharedChangeResponse,omitempty"`
	AckSharedChanges     *AckSharedChanges     `cbor:"AckSharedChanges,omitempty"`
	Hello                *Hello                `cbor:"Hello,omitempty"`
	Heartbeat            *Heartbeat            `cbor:"Heartbeat,omitempty"`
	Error                *Error                `cbor:"Error,omitempty"`
}

// wrap puts m in an envelope. It refuses nil messages and Message
// implementations of other packages.
func wrap(m Message) (envelope, error) {
	var e envelope
	isNil := false
	switch v := m.(type) {
	case *StateChange:
		e.StateChange, isNil = v, v == nil
	case *StateBatch:
		e.StateBatch, isNil = v, v == nil
	case *StateRequest:
		e.StateRequest, isNil = v, v == nil
	case *StateResponse:
		e.StateResponse, isNil = v, v == nil
	case *SharedChange:
		e.SharedChange, isNil = v, v == nil
	case *SharedChangeBatch:
		e.SharedChangeBatch, isNil = v, v == nil
	case *SharedChangeRequest:
		e.SharedChangeRequest, isNil = v, v == nil
	case *SharedChangeResponse:
		e.SharedChangeResponse, isNil = v, v == nil
	case *AckSharedChanges:
		e.AckSharedChanges, isNil = v, v == nil
	case *Hello:
		e.Hello, isNil = v, v == nil
	case *Heartbeat:
		e.Heartbeat, isNil = v, v == nil
	case *Error:
		e.Error, isNil = v, v == nil
	case nil:
		return e, fmt.Errorf("%w: nil message", ErrInvalid)
	default:
		return e, fmt.Errorf("%w: %T is not a message of this protocol", ErrUnknownMessage, m)
	}
	if isNil {
		return e, fmt.Errorf("%w: nil %T", ErrInvalid, m)
	}
	return e, nil
}

// newMessage returns a new zero message of the named variant, or nil if name
// is not a variant of this protocol.
func newMessage(name []byte) Message {
	switch string(name) {
	case "StateChange":
		return new(StateChange)
	case "StateBatch":
		return new(StateBatch)
	case "StateRequest":
		return new(StateRequest)
	case "StateResponse":
		return new(StateResponse)
	case "SharedChange":
		return new(SharedChange)
	case "SharedChangeBatch":
		return new(SharedChangeBatch)
	case "SharedChangeRequest":
		return new(SharedChangeRequest)
	case "SharedChangeResponse":
		return new(SharedChangeResponse)
	case "AckSharedChanges":
		return new(AckSharedChanges)
	case "Hello":
		return new(Hello)
	case "Heartbeat":
		return new(Heartbeat)
	case "Error":
		return new(Error)
	}
	return nil
}

// Encode validates m and returns its frame body: the deterministic CBOR
// encoding (RFC 8949 §4.2.1) of the one-key map {variant name: body}. The
// same message always encodes to the same bytes. Payloads (data) are copied
// verbatim, so they are deterministic only if their writer made them so.
//
// Errors wrap ErrInvalid: a Validate failure, a payload that is not one
// well-formed CBOR data item free of tags and indefinite lengths, or a frame
// that breaks a decoding limit (nesting, collection sizes) because of its
// payloads. Encode does not check the frame size; Writer does.
func Encode(m Message) ([]byte, error) {
	env, err := wrap(m)
	if err != nil {
		return nil, err
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	// Marshal encodes into a pooled buffer and returns an exact-size copy.
	b, err := encMode.Marshal(&env)
	if err != nil {
		return nil, fmt.Errorf("%w: encoding %s: %w", ErrInvalid, m.Name(), err)
	}
	if err := checkEncoded(m, b); err != nil {
		return nil, err
	}
	return b, nil
}

// encodeTo appends the encoding of m to buf, as Encode does. On error buf
// holds garbage after its original length.
func encodeTo(buf *bytes.Buffer, m Message) error {
	env, err := wrap(m)
	if err != nil {
		return err
	}
	if err := m.Validate(); err != nil {
		return err
	}
	start := buf.Len()
	if err := encMode.MarshalToBuffer(&env, buf); err != nil {
		return fmt.Errorf("%w: encoding %s: %w", ErrInvalid, m.Name(), err)
	}
	return checkEncoded(m, buf.Bytes()[start:])
}

// checkEncoded walks the frame body b of m as Decode will (checkFrame), so
// that nothing is sent that a peer must refuse. The encoder checked each
// payload on its own; this adds the limits that depend on where a payload
// sits in the frame (nesting), those the encoder does not know (collection
// sizes) and valid UTF-8 in payloads.
func checkEncoded(m Message, b []byte) error {
	if _, _, _, err := checkFrame(b); err != nil {
		return fmt.Errorf("%w: encoding %s: a payload breaks a decoding limit: %w", ErrInvalid, m.Name(), err)
	}
	return nil
}

// Decode decodes one frame body into a message and validates it. It does not
// retain b: the message owns all of its memory.
//
// Errors: ErrMalformed, wrapped with the reason and the field's path, as in
// "decoding StateBatch: protocol: malformed message: records[3].timestamp:
// ...", when b is not exactly one well-formed CBOR data item within the limits
// (MaxNesting, MaxCollectionSize, no tags, no indefinite lengths, no duplicate
// keys, valid UTF-8 everywhere, payloads included), when the top-level value
// is not a map with exactly one text key, or when a known field has the wrong
// type (a UUID that is not a 16-byte byte string, an HLC that is not
// [uint, uint32, UUID], null where the field is not nullable, ...);
// ErrUnknownMessage when the variant name is not known; otherwise the Validate
// error, which wraps ErrInvalid. The message is nil whenever the error is not.
//
// Decode accepts encodings that are not deterministic (any key order, longer
// heads): a peer's CBOR library need not sort. Fields of a body that Decode
// does not know are ignored (forward compatibility), but they too must be
// well-formed and within the limits. A data field holding null is treated as
// absent.
func Decode(b []byte) (Message, error) {
	name, body, known, err := checkFrame(b)
	if err != nil {
		if known {
			return nil, fmt.Errorf("decoding %s: %w: %w", name, ErrMalformed, err)
		}
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if !known {
		return nil, fmt.Errorf("%w: %q", ErrUnknownMessage, truncateUTF8(name, 64))
	}
	m := newMessage([]byte(name))
	if err := bodyDecMode.Unmarshal(body, m); err != nil {
		return nil, fmt.Errorf("decoding %s: %w: %w", name, ErrMalformed, err)
	}
	normalize(m)
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return m, nil
}

// normalize gives a decoded message the form Encode writes back: a null
// payload is an absent one, and an empty list is nil, so that decoding,
// encoding and decoding again yields an equal message.
func normalize(m Message) {
	switch m := m.(type) {
	case *StateChange:
		m.Data = nullToNil(m.Data)
	case *StateBatch:
		m.Records = normalizeRecords(m.Records)
	case *StateRequest:
		m.ModelTypes = emptyToNil(m.ModelTypes)
		m.Watermarks = emptyToNil(m.Watermarks)
		m.Compression = emptyToNil(m.Compression)
	case *StateResponse:
		m.Records = normalizeRecords(m.Records)
	case *SharedChange:
		m.Data = nullToNil(m.Data)
	case *SharedChangeBatch:
		m.Entries = normalizeEntries(m.Entries)
	case *SharedChangeRequest:
		m.ModelTypes = emptyToNil(m.ModelTypes)
		m.Watermarks = emptyToNil(m.Watermarks)
		m.Compression = emptyToNil(m.Compression)
	case *SharedChangeResponse:
		m.Entries = normalizeEntries(m.Entries)
	case *Hello:
		m.Versions = emptyToNil(m.Versions)
		m.Watermarks = emptyToNil(m.Watermarks)
		m.Compression = emptyToNil(m.Compression)
	case *Heartbeat:
		m.Watermarks = emptyToNil(m.Watermarks)
	}
}

func normalizeRecords(rs []StateRecord) []StateRecord {
	for i := range rs {
		rs[i].Data = nullToNil(rs[i].Data)
	}
	return emptyToNil(rs)
}

func normalizeEntries(es []SharedChangeEntry) []SharedChangeEntry {
	for i := range es {
		es[i].Data = nullToNil(es[i].Data)
	}
	return emptyToNil(es)
}

func emptyToNil[S ~[]E, E any](s S) S {
	if len(s) == 0 {
		return nil
	}
	return s
}

// cborNull is the encoding of the CBOR simple value null.
const cborNull = 0xf6

func nullToNil(d cbor.RawMessage) cbor.RawMessage {
	if len(d) == 1 && d[0] == cborNull {
		return nil
	}
	return d
}
