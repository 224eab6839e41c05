package protocol

import (
	"encoding/hex"
	"strings"

	"github.com/google/uuid"
)

// A tiny CBOR writer for hand-made, possibly wrong, frames. Each function
// returns the encoding of one data item (or of its head); they concatenate.

func cHead(major byte, n uint64) []byte {
	m := major << 5
	switch {
	case n < 24:
		return []byte{m | byte(n)}
	case n <= 0xff:
		return []byte{m | 24, byte(n)}
	case n <= 0xffff:
		return []byte{m | 25, byte(n >> 8), byte(n)}
	case n <= 0xffffffff:
		return []byte{m | 26, byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}
	}
	return []byte{m | 27, byte(n >> 56), byte(n >> 48), byte(n >> 40), byte(n >> 32), byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}
}

func cat(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func cUint(n uint64) []byte    { return cHead(majorUint, n) }
func cNeg(n uint64) []byte     { return cHead(majorNeg, n) } // -1-n
func cBytes(b []byte) []byte   { return cat(cHead(majorBytes, uint64(len(b))), b) }
func cText(s string) []byte    { return cat(cHead(majorText, uint64(len(s))), []byte(s)) }
func cUUID(u uuid.UUID) []byte { return cBytes(u[:]) }
func cBool(b bool) []byte {
	if b {
		return []byte{0xf5}
	}
	return []byte{0xf4}
}
func cNull() []byte { return []byte{0xf6} }

func cArray(items ...[]byte) []byte {
	return cat(cHead(majorArray, uint64(len(items))), cat(items...))
}

// kv is one map pair, key and value already encoded.
type kv struct{ k, v []byte }

// f is a pair with a text key.
func f(name string, v []byte) kv { return kv{cText(name), v} }

// cMap writes the pairs in the order given: not necessarily canonical, and
// duplicates are kept.
func cMap(pairs ...kv) []byte {
	out := cHead(majorMap, uint64(len(pairs)))
	for _, p := range pairs {
		out = append(append(out, p.k...), p.v...)
	}
	return out
}

func cHLC(h HLC) []byte {
	return cArray(cUint(h.Timestamp), cUint(uint64(h.Counter)), cUUID(h.DeviceID))
}

// cFrame is the envelope {name: body}.
func cFrame(name string, body []byte) []byte { return cMap(f(name, body)) }

// unhex decodes hex with optional whitespace; it panics on bad input.
func unhex(s string) []byte {
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		panic(err)
	}
	return b
}

// encodeUnchecked encodes m as Encode does but without Validate, to build
// frames that a faulty peer could send.
func encodeUnchecked(m Message) []byte {
	env, err := wrap(m)
	if err != nil {
		panic(err)
	}
	b, err := encMode.Marshal(&env)
	if err != nil {
		panic(err)
	}
	return b
}

// ackBody is a valid AckSharedChanges body, the smallest message with a
// UUID, an HLC and a text field; extra pairs are appended as given.
func ackBody(extra ...kv) []byte {
	pairs := []kv{
		f("library_id", cUUID(exLibrary)),
		f("from_device", cUUID(exDevA)),
		f("up_to_hlc", cHLC(hlcB(40, 0))),
		f("model_type", cText("tag")),
	}
	return cMap(append(pairs, extra...)...)
}

// nested returns depth nested one-element arrays around 0: depth 1 is [0].
func nested(depth int) []byte {
	var out []byte
	for range depth {
		out = append(out, 0x81)
	}
	return append(out, 0x00)
}
