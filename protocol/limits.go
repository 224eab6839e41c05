package protocol

// ProtocolID is the libp2p protocol ID of the sync stream. Its last element is
// the major version: peers that speak another major register another ID.
const ProtocolID = "/spacedrive/sync/2.0.0"

// Version is the protocol major version this package speaks. Hello.Versions
// lists majors; minor changes (new optional fields, which receivers ignore)
// do not change it.
const Version uint32 = 2

// Limits. Every one of them is part of the protocol: a peer that exceeds one is
// refused (ErrFrameTooLarge, ErrMalformed or ErrInvalid), so another
// implementation must respect the same numbers.
const (
	// DefaultMaxFrameSize is the largest frame body, in bytes, that a node
	// accepts or sends unless configured otherwise: 4 MiB. The varint length
	// prefix is not counted.
	DefaultMaxFrameSize = 4 << 20

	// MaxRecordsPerMessage is the most records (StateBatch, StateResponse) or
	// entries (SharedChangeBatch, SharedChangeResponse) one message may carry,
	// and the largest Limit a StateRequest or SharedChangeRequest may ask for.
	MaxRecordsPerMessage = 10000

	// MaxWatermarks is the most watermarks one Hello, Heartbeat, StateRequest
	// or SharedChangeRequest may carry. It is also the decoder's limit on the
	// number of elements of any CBOR array and pairs of any CBOR map in a
	// frame, payloads included (see MaxCollectionSize).
	MaxWatermarks = 16384

	// MaxModelTypes is the most model types one StateRequest or
	// SharedChangeRequest may name.
	MaxModelTypes = 256

	// MaxModelTypeLen is the longest model type name, in bytes of UTF-8. A
	// model type is also non-empty, valid UTF-8, and free of NUL and other
	// control characters (Unicode category Cc).
	MaxModelTypeLen = 128

	// MaxErrorMessageLen is the longest Error.Message, in bytes of UTF-8.
	MaxErrorMessageLen = 4096

	// MaxVersions is the most protocol versions one Hello may list.
	MaxVersions = 16

	// MaxNesting is the deepest nesting of CBOR arrays and maps in a frame,
	// counted over the whole frame: the outer one-key map is level 1, the
	// message body level 2, and a payload (data) inside a record of a batch
	// starts at level 5. The decoder refuses deeper frames as malformed.
	MaxNesting = 32

	// MaxCollectionSize is the decoder's limit on the number of elements of
	// any CBOR array and the number of pairs of any CBOR map in a frame,
	// payloads included. It equals MaxWatermarks, the largest list a valid
	// message can hold; lists that must be shorter are checked by Validate.
	MaxCollectionSize = MaxWatermarks
)
