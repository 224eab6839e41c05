package protocol

import (
	"fmt"
	"unicode/utf8"

	"github.com/klauspost/compress/s2"
)

// Frame compression. A node lists the algorithms it accepts in
// Hello.Compression (session streams) or in the request's Compression
// (request streams). Once a node has received such a list naming an
// algorithm it speaks, it may compress the frames it sends after that on the
// same stream; a node never compresses a frame for a peer that did not list
// the algorithm, so a peer without the field only ever sees plain frames.
//
// A compressed frame body is one algorithm byte, then the compressed bytes of
// the message body (one CBOR message, as in a plain frame). A plain body
// starts with 0xa1 (a CBOR map of one pair), so the first byte tells the two
// apart. The length prefix counts the compressed body; the decompressed body
// obeys the same size limit as a plain one.

// CompressionSnappy names Snappy's block format: the algorithm byte
// compressedSnappy, then a Snappy block (a varint of the decompressed length,
// then literals and copies), as github.com/golang/snappy's Encode writes and
// any Snappy implementation reads. It is this package's only algorithm.
const CompressionSnappy = "snappy"

// compressedSnappy is the first byte of a Snappy-compressed frame body.
const compressedSnappy = 0x01

// Limits of a compression list.
const (
	// MaxCompressions is the most algorithm names one list may hold.
	MaxCompressions = 8
	// MaxCompressionNameLen is the longest algorithm name, in bytes.
	MaxCompressionNameLen = 32
)

// minCompress is the smallest body a Writer tries to compress: below it,
// Snappy's block header and the algorithm byte outweigh what a single
// message's repeats save.
const minCompress = 128

// Compressions returns the list of algorithms this package accepts, for a
// Hello or a request.
func Compressions() []string { return []string{CompressionSnappy} }

// AcceptsCompression reports whether a peer's list names an algorithm this
// package speaks: frames to it may then be compressed.
func AcceptsCompression(list []string) bool {
	for _, a := range list {
		if a == CompressionSnappy {
			return true
		}
	}
	return false
}

// checkCompressions validates a compression list: at most MaxCompressions
// names of 1 to MaxCompressionNameLen bytes of UTF-8 each. Unknown names are
// fine (a newer peer's).
func checkCompressions(msg string, list []string) error {
	if len(list) > MaxCompressions {
		return invalid(msg, "compression", "%d algorithms, limit %d", len(list), MaxCompressions)
	}
	for i, a := range list {
		if a == "" || len(a) > MaxCompressionNameLen || !utf8.ValidString(a) {
			return invalid(msg, at("compression", i), "algorithm name of %d bytes, want 1..%d bytes of UTF-8", len(a), MaxCompressionNameLen)
		}
	}
	return nil
}

// compress appends to dst the compressed body of a message body, or returns
// nil if compressing does not make it smaller.
func compress(dst, body []byte) []byte {
	if len(body) < minCompress {
		return nil
	}
	need := 1 + s2.MaxEncodedLen(len(body))
	if cap(dst) < need {
		dst = make([]byte, 0, need)
	}
	dst = append(dst[:0], compressedSnappy)
	out := s2.EncodeSnappy(dst[1:need], body)
	if 1+len(out) >= len(body) {
		return nil
	}
	return dst[:1+len(out)]
}

// decompress returns the message body of a compressed frame body b (whose
// first byte is not that of a plain body), decoded into buf when it is large
// enough. The decompressed length, which a Snappy block states first, is
// checked against maxSize before anything is allocated: a larger one is
// ErrFrameTooLarge (a decompression bomb), an unknown algorithm byte or a
// corrupt block ErrMalformed.
func decompress(b []byte, maxSize int, buf []byte) ([]byte, error) {
	if b[0] != compressedSnappy {
		return nil, fmt.Errorf("%w: frame body starts with 0x%02x: neither a message nor a compressed frame", ErrMalformed, b[0])
	}
	n, err := s2.DecodedLen(b[1:])
	if err != nil {
		return nil, fmt.Errorf("%w: compressed frame: %v", ErrMalformed, err)
	}
	if n > maxSize {
		return nil, fmt.Errorf("%w: compressed frame decompresses to %d bytes, limit %d", ErrFrameTooLarge, n, maxSize)
	}
	if n == 0 {
		return nil, fmt.Errorf("%w: compressed frame of an empty body", ErrMalformed)
	}
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	out, err := s2.Decode(buf[:n], b[1:])
	if err != nil {
		return nil, fmt.Errorf("%w: compressed frame: %v", ErrMalformed, err)
	}
	return out, nil
}

// isPlain reports whether a frame body is a plain (uncompressed) message:
// compressed bodies start with an algorithm byte below 0x20, which no CBOR
// map (major type 5, 0xa0..0xbf) starts with.
func isPlain(b []byte) bool { return len(b) == 0 || b[0] >= 0x20 }
