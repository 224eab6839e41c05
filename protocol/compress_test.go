package protocol

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"reflect"
	"testing"

	"github.com/google/uuid"
	"github.com/klauspost/compress/s2"
)

// bigBatch is a SharedChangeBatch of n entries with 256-byte payloads of
// varying content, as live pushes carry them.
func bigBatch(n int) *SharedChangeBatch {
	m := &SharedChangeBatch{LibraryID: exLibrary}
	var prev *HLC
	for i := 0; i < n; i++ {
		p := make([]byte, 256)
		p[0], p[1] = 0x58, 254
		for j := 2; j < len(p); j++ {
			p[j] = byte(uint64(i*7919+j) * 0x9e3779b97f4a7c15 >> 56)
		}
		h := hlcA(uint64(1000+i), 0)
		m.Entries = append(m.Entries, SharedChangeEntry{HLC: h, ModelType: "tag", RecordUUID: uuid.UUID{byte(i), byte(i >> 8), 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14},
			ChangeType: Insert, Data: p, Prev: prev})
		prev = ptr(h)
	}
	return m
}

// TestCompressedRoundTrip writes every example and a large batch through a
// compressing Writer and reads them back through a Reader that accepts
// compressed frames; the large batch must have been compressed.
func TestCompressedRoundTrip(t *testing.T) {
	var msgs []Message
	for _, ex := range examples() {
		msgs = append(msgs, ex.msg)
	}
	msgs = append(msgs, bigBatch(100), bigBatch(1))
	var stream bytes.Buffer
	w := NewWriter(&stream, 0)
	w.Compress(true)
	sizes := make([]int, len(msgs))
	for i, m := range msgs {
		before := stream.Len()
		if err := w.WriteMessage(m); err != nil {
			t.Fatalf("WriteMessage(%s): %v", m.Name(), err)
		}
		sizes[i] = stream.Len() - before
	}
	plain, err := Encode(msgs[len(msgs)-2])
	if err != nil {
		t.Fatal(err)
	}
	if got := sizes[len(sizes)-2]; got >= len(plain)*9/10 {
		t.Errorf("a batch of 100 changes took %d bytes compressed, plain %d: want at least 10%% less", got, len(plain))
	}
	r := NewReader(&stream, 0)
	r.AcceptCompressed()
	for i, want := range msgs {
		got, err := r.ReadMessage()
		if err != nil {
			t.Fatalf("ReadMessage #%d (%s): %v", i, want.Name(), err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("message #%d (%s) changed on the way", i, want.Name())
		}
	}
	if _, err := r.ReadMessage(); err != io.EOF {
		t.Errorf("at the end: %v, want io.EOF", err)
	}
}

// compressedFrame returns the frame of body compressed (algorithm byte and
// Snappy block).
func compressedFrame(body []byte) []byte {
	return frameOf(append([]byte{compressedSnappy}, s2.EncodeSnappy(nil, body)...))
}

// TestCompressedRefused: a Reader refuses a compressed frame unless it
// accepts compression, a frame that would decompress beyond its limit (a
// bomb: refused from the stated length, before decompressing), corrupt
// blocks, unknown algorithm bytes and nested compression; after each the
// stream is still in step.
func TestCompressedRefused(t *testing.T) {
	hello, err := Encode(vHello())
	if err != nil {
		t.Fatal(err)
	}
	zeros := append(append([]byte(nil), hello[:len(hello)-1]...), make([]byte, 1<<20)...) // not a message, but 1 MiB
	statesHuge := append([]byte{compressedSnappy}, binary.AppendUvarint(nil, 1<<30)...)
	corrupt := append([]byte{compressedSnappy}, s2.EncodeSnappy(nil, hello)...)
	corrupt = corrupt[:len(corrupt)-3]
	nested := append([]byte{compressedSnappy}, s2.EncodeSnappy(nil, append([]byte{compressedSnappy}, s2.EncodeSnappy(nil, hello)...))...)
	for _, c := range []struct {
		name   string
		frame  []byte
		accept bool
		want   error
	}{
		{"compressed, not accepted", compressedFrame(hello), false, ErrMalformed},
		{"bomb: 1 MiB of body under a 64 KiB limit", compressedFrame(zeros), true, ErrFrameTooLarge},
		{"a block stating 1 GiB", frameOf(statesHuge), true, ErrFrameTooLarge},
		{"corrupt block", frameOf(corrupt), true, ErrMalformed},
		{"unknown algorithm byte", frameOf(append([]byte{0x02}, s2.EncodeSnappy(nil, hello)...)), true, ErrMalformed},
		{"compressed twice", frameOf(nested), true, ErrMalformed},
		{"empty block", frameOf([]byte{compressedSnappy, 0x00}), true, ErrMalformed},
	} {
		stream := append(append([]byte(nil), c.frame...), frameOf(hello)...)
		r := NewReader(bytes.NewReader(stream), 64<<10)
		if c.accept {
			r.AcceptCompressed()
		}
		if _, err := r.ReadMessage(); !errors.Is(err, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, err, c.want)
		}
		if m, err := r.ReadMessage(); err != nil || m.Name() != "Hello" {
			t.Errorf("%s: the next frame reads as (%v, %v), want the Hello", c.name, m, err)
		}
	}
}

// TestCompressionListValidated: a Hello or request lists at most
// MaxCompressions names of 1 to MaxCompressionNameLen bytes; names it does
// not know are fine.
func TestCompressionListValidated(t *testing.T) {
	h := vHello()
	h.Compression = []string{"zstd-2030", CompressionSnappy}
	if err := h.Validate(); err != nil {
		t.Errorf("Hello with an unknown algorithm: %v", err)
	}
	for _, list := range [][]string{{""}, {string(make([]byte, MaxCompressionNameLen+1))}, make([]string, MaxCompressions+1)} {
		h.Compression = list
		if err := h.Validate(); !errors.Is(err, ErrInvalid) {
			t.Errorf("Hello with compression %q: %v, want ErrInvalid", list, err)
		}
		r := vStateRequest()
		r.Compression = list
		if err := r.Validate(); !errors.Is(err, ErrInvalid) {
			t.Errorf("StateRequest with compression %q: %v, want ErrInvalid", list, err)
		}
	}
	if !AcceptsCompression([]string{"x", CompressionSnappy}) || AcceptsCompression([]string{"x"}) || AcceptsCompression(nil) {
		t.Error("AcceptsCompression does not find snappy where it should")
	}
}
