package protocol

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"reflect"
	"testing"

	"github.com/klauspost/compress/s2"
)

// fuzzMaxFrame is the frame limit of FuzzReadFrame: small, so that the
// fuzzer reaches it.
const fuzzMaxFrame = 4096

// seedFrames returns the frame body of every example plus edge cases.
func seedFrames(tf *testing.F) [][]byte {
	var out [][]byte
	for _, ex := range examples() {
		b, err := Encode(ex.msg)
		if err != nil {
			tf.Fatal(err)
		}
		out = append(out, b)
	}
	for _, m := range []Message{vStateChange(), vStateBatch(), vStateRequest(), vStateResponse(), vSharedChange(),
		vSharedChangeBatch(), vSharedChangeRequest(), vSharedChangeResponse(), vAck(), vHello(), vHeartbeat(), vError()} {
		b, err := Encode(m)
		if err != nil {
			tf.Fatal(err)
		}
		out = append(out, b)
	}
	return append(out,
		nil,
		[]byte{0xa0},
		[]byte{0xff},
		cFrame("Future", cMap()),
		cFrame("AckSharedChanges", ackBody(f("x", nested(MaxNesting-2)))),
		cFrame("StateBatch", cMap(f("records", cArray(cMap(f("data", cNull())))))),
		cat([]byte{0xbf}, cText("Hello"), cMap(), []byte{0xff}),
	)
}

func FuzzReadFrame(f *testing.F) {
	for _, b := range seedFrames(f) {
		if len(b) > 0 && len(b) <= fuzzMaxFrame {
			f.Add(frameOf(b))
			f.Add(append(frameOf(b), frameOf(b)...))
		}
	}
	f.Add([]byte{})
	f.Add([]byte{0x00})
	f.Add([]byte{0x80, 0x00})
	f.Add(binary.AppendUvarint(nil, fuzzMaxFrame+1))
	f.Add(append(bytes.Repeat([]byte{0xff}, 9), 0x01))
	f.Add(bytes.Repeat([]byte{0x80}, 11))
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bufio.NewReader(bytes.NewReader(in))
		for {
			body, err := ReadFrame(r, fuzzMaxFrame)
			if err != nil {
				if body != nil {
					t.Fatalf("ReadFrame returned %d bytes with error %v", len(body), err)
				}
				return
			}
			if len(body) == 0 || len(body) > fuzzMaxFrame {
				t.Fatalf("ReadFrame returned a frame of %d bytes, limit %d", len(body), fuzzMaxFrame)
			}
			if m, err := Decode(body); err == nil {
				if err := m.Validate(); err != nil {
					t.Fatalf("Decode returned an invalid message: %v", err)
				}
			} else if m != nil {
				t.Fatalf("Decode returned a message with error %v", err)
			}
		}
	})
}

// FuzzCompressedFrame feeds frame bodies to a Reader that accepts
// compressed frames, with a small limit: no panic, no body beyond the limit
// (ErrFrameTooLarge instead), and what decodes re-encodes.
func FuzzCompressedFrame(f *testing.F) {
	for _, b := range seedFrames(f) {
		if len(b) > 0 {
			f.Add(append([]byte{compressedSnappy}, s2.EncodeSnappy(nil, b)...))
			f.Add(b)
		}
	}
	f.Add([]byte{compressedSnappy})
	f.Add([]byte{compressedSnappy, 0x00})
	f.Add(append([]byte{compressedSnappy}, binary.AppendUvarint(nil, fuzzMaxFrame+1)...))
	f.Add(append([]byte{compressedSnappy}, s2.EncodeSnappy(nil, make([]byte, 2*fuzzMaxFrame))...))
	f.Fuzz(func(t *testing.T, body []byte) {
		if len(body) == 0 || len(body) > fuzzMaxFrame {
			return
		}
		r := NewReader(bytes.NewReader(frameOf(body)), fuzzMaxFrame)
		r.AcceptCompressed()
		m, err := r.ReadMessage()
		if err != nil {
			if m != nil {
				t.Fatalf("ReadMessage returned a message with error %v", err)
			}
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnknownMessage) && !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrFrameTooLarge) {
				t.Fatalf("error %v is neither malformed, unknown_message, invalid nor frame_too_large", err)
			}
			if errors.Is(err, ErrFrameTooLarge) {
				if n, derr := s2.DecodedLen(body[1:]); derr != nil || n <= fuzzMaxFrame {
					t.Fatalf("frame_too_large for a body stating %d bytes (%v)", n, derr)
				}
			}
			return
		}
		if _, err := Encode(m); err != nil {
			t.Fatalf("Encode of a decoded message: %v", err)
		}
		if _, err := r.ReadMessage(); err != io.EOF {
			t.Fatalf("Reader at the end: got %v, want io.EOF", err)
		}
	})
}

func FuzzDecode(f *testing.F) {
	for _, b := range seedFrames(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		m, err := Decode(in)
		if err != nil {
			if m != nil {
				t.Fatalf("Decode returned a message with error %v", err)
			}
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnknownMessage) && !errors.Is(err, ErrInvalid) {
				t.Fatalf("Decode error %v is neither malformed, unknown_message nor invalid", err)
			}
			return
		}
		b, err := Encode(m)
		if err != nil {
			t.Fatalf("Encode of a decoded message: %v\nmessage: %+v", err, m)
		}
		m2, err := Decode(b)
		if err != nil {
			t.Fatalf("Decode of a re-encoded message: %v\nframe: %x", err, b)
		}
		if !reflect.DeepEqual(m, m2) {
			t.Fatalf("decode, encode, decode changed the message:\n first %+v\nsecond %+v", m, m2)
		}
		b2, err := Encode(m2)
		if err != nil || !bytes.Equal(b, b2) {
			t.Fatalf("encoding is not stable: %x then %x (%v)", b, b2, err)
		}
		// A frame of the re-encoding reads back through the Reader.
		r := NewReader(bytes.NewReader(frameOf(b)), 0)
		if m3, err := r.ReadMessage(); err != nil || !reflect.DeepEqual(m3, m) {
			t.Fatalf("Reader: got (%+v, %v), want the message", m3, err)
		}
		if _, err := r.ReadMessage(); err != io.EOF {
			t.Fatalf("Reader at the end: got %v, want io.EOF", err)
		}
	})
}
