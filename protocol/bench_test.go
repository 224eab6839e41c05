package protocol

import (
	"fmt"
	"strings"
	"testing"

	"github.com/fxamacker/cbor/v2"
	"github.com/google/uuid"
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
