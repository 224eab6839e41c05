package protocol

import (
	"fmt"
	"strings"
	"testing"

	"github.com/fxamacker/cbor/v2"
	"github.com/google/uuid"
	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
)

// benchRecords is the number of records in the benchmarked StateBatch.
const benchRecords = 1000

// benchPayloads are the two shapes of a ~256-byte record payload: an opaque
// byte string, and a map of text fields like a real record.
func benchPayloads() map[string]func(i int) cbor.RawMessage {
	return map[string]func(i int) cbor.RawMessage{
		"bytes": func(i int) cbor.RawMessage {
			b := make([]byte, 254) // 2-byte head + 254 = 256 bytes
			for j := range b {
				b[j] = byte(i + j)
			}
			return mustCBOR(b)
		},
		"map": func(i int) cbor.RawMessage {
			return mustCBOR(map[string]any{
				"name":     fmt.Sprintf("IMG_%06d.jpg", i),
				"path":     "/home/user/Pictures/2025/holiday/" + strings.Repeat("x", 60),
				"size":     1<<20 + i,
				"mtime":    1764130555000 + i,
				"kind":     "image",
				"hidden":   false,
				"checksum": strings.Repeat("ab", 32),
				"tags":     []any{"holiday", "beach"},
			})
		},
	}
}

func benchBatch(payload func(int) cbor.RawMessage) *StateBatch {
	dev := uuid.MustParse("aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa")
	m := &StateBatch{LibraryID: exLibrary, ModelType: "entry", DeviceID: dev}
	for i := range benchRecords {
		var rec uuid.UUID
		rec[0], rec[1], rec[15] = byte(i>>8), byte(i), 1
		m.Records = append(m.Records, StateRecord{
			RecordUUID: rec,
			Data:       payload(i),
			Timestamp:  HLC{Timestamp: 1764130555000 + uint64(i), DeviceID: dev},
		})
	}
	return m
}

func reportRecords(b *testing.B) {
	b.ReportMetric(float64(b.N*benchRecords)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkEncodeStateBatch measures Encode (Validate and the wire check
// included) of a StateBatch of 1,000 records with ~256-byte payloads. MB/s
// counts frame bytes. Run: go test ./protocol -run '^$' -bench StateBatch
// -benchtime 2s -count 3.
func BenchmarkEncodeStateBatch(b *testing.B) {
	for name, payload := range benchPayloads() {
		b.Run(name, func(b *testing.B) {
			m := benchBatch(payload)
			frame, err := Encode(m)
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(frame)))
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, err := Encode(m); err != nil {
					b.Fatal(err)
				}
			}
			reportRecords(b)
		})
	}
}

// BenchmarkDecodeStateBatch measures Decode (Validate included) of the same
// frames.
func BenchmarkDecodeStateBatch(b *testing.B) {
	for name, payload := range benchPayloads() {
		b.Run(name, func(b *testing.B) {
			frame, err := Encode(benchBatch(payload))
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(frame)))
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, err := Decode(frame); err != nil {
					b.Fatal(err)
				}
			}
			reportRecords(b)
		})
	}
}

// randomPayload is a 256-byte CBOR byte string of incompressible content,
// different for each i.
func randomPayload(i int) cbor.RawMessage {
	b := make([]byte, 254)
	x := uint64(i)*0x9e3779b97f4a7c15 + 1
	for j := range b {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		b[j] = byte(x)
	}
	return mustCBOR(b)
}

// BenchmarkCompression compares the frame compressions considered for
// PROTOCOL.md §3.1 on a SharedChangeBatch of n changes with incompressible
// 256-byte payloads (what compression can save is the field names, IDs and
// HLCs around them): bytes per change beyond the payload ("overhead-B"),
// and compression and decompression speed in MB of plain frame per second.
// Snappy (the protocol's) against zstd at its fastest level:
//
//	go test ./protocol -run '^$' -bench Compression -benchtime 1s
func BenchmarkCompression(b *testing.B) {
	zenc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
	if err != nil {
		b.Fatal(err)
	}
	zdec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1))
	if err != nil {
		b.Fatal(err)
	}
	algs := []struct {
		name       string
		compress   func([]byte) []byte
		decompress func([]byte) ([]byte, error)
	}{
		{"none", func(p []byte) []byte { return p }, func(c []byte) ([]byte, error) { return c, nil }},
		{"snappy", func(p []byte) []byte { return s2.EncodeSnappy(nil, p) }, func(c []byte) ([]byte, error) { return s2.Decode(nil, c) }},
		{"zstd-fastest", func(p []byte) []byte { return zenc.EncodeAll(p, nil) }, func(c []byte) ([]byte, error) { return zdec.DecodeAll(c, nil) }},
	}
	for _, n := range []int{10, 100, 1000} {
		m := &SharedChangeBatch{LibraryID: exLibrary}
		for i := range n {
			h := hlcA(uint64(1000+i/3), uint32(i%3))
			var prev *HLC
			if i > 0 {
				prev = ptr(m.Entries[i-1].HLC)
			}
			m.Entries = append(m.Entries, SharedChangeEntry{HLC: h, ModelType: "tag", RecordUUID: uuid.New(), ChangeType: Insert, Data: randomPayload(i), Prev: prev})
		}
		plain, err := Encode(m)
		if err != nil {
			b.Fatal(err)
		}
		for _, a := range algs {
			c := a.compress(plain)
			overhead := float64(len(c)-256*n) / float64(n)
			b.Run(fmt.Sprintf("%s/n=%d/compress", a.name, n), func(b *testing.B) {
				b.SetBytes(int64(len(plain)))
				for b.Loop() {
					a.compress(plain)
				}
				b.ReportMetric(overhead, "overhead-B")
			})
			b.Run(fmt.Sprintf("%s/n=%d/decompress", a.name, n), func(b *testing.B) {
				b.SetBytes(int64(len(plain)))
				for b.Loop() {
					if _, err := a.decompress(c); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(overhead, "overhead-B")
			})
		}
	}
}
