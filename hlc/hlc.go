// Package hlc implements the hybrid logical clock that orders every change in
// syncnode.
//
// An HLC is the triple (timestamp in ms since the Unix epoch, counter,
// device ID), compared in that order. The device ID breaks ties, so any two
// HLCs compare and the order is total: last-writer-wins needs nothing else.
//
// The package has two halves: the HLC value type (ordering, a text form, a
// fixed-width key encoding whose byte order is the HLC order) and Clock, a
// generator driven by an injected wall clock that never goes backwards, not
// after a far-ahead remote timestamp is merged, not when the wall clock steps
// back, and not across restarts (see Clock.Lease).
package hlc

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
)

// KeySize is the length in bytes of the key encoding of an HLC: 8 bytes of
// timestamp, 4 of counter and 16 of device ID, all big-endian.
const KeySize = 8 + 4 + 16

// HLC is one hybrid logical clock reading. The zero value is the smallest HLC
// and means "nothing yet"; IsZero reports it. HLC is a comparable value type.
type HLC struct {
	// The struct tag makes CBOR encoders (fxamacker/cbor) write an HLC as the
	// array [timestamp, counter, device_id], the protocol's wire form.
	_ struct{} `cbor:",toarray"`
	// Timestamp is the physical part, in milliseconds since the Unix epoch.
	Timestamp uint64
	// Counter orders events within one millisecond.
	Counter uint32
	// DeviceID is the device that issued the HLC; it breaks ties.
	DeviceID uuid.UUID
}

// ErrInvalid is returned when a text or key form of an HLC cannot be parsed.
var ErrInvalid = errors.New("hlc: invalid encoding")

// IsZero reports whether h is the zero HLC.
func (h HLC) IsZero() bool { return h == HLC{} }

// Compare returns -1 if h < o, 0 if h == o and +1 if h > o, ordering by
// timestamp, then counter, then device ID (as bytes).
func (h HLC) Compare(o HLC) int {
	switch {
	case h.Timestamp < o.Timestamp:
		return -1
	case h.Timestamp > o.Timestamp:
		return 1
	case h.Counter < o.Counter:
		return -1
	case h.Counter > o.Counter:
		return 1
	}
	return bytes.Compare(h.DeviceID[:], o.DeviceID[:])
}

// Less reports whether h orders before o.
func (h HLC) Less(o HLC) bool { return h.Compare(o) < 0 }

// After reports whether h orders after o.
func (h HLC) After(o HLC) bool { return h.Compare(o) > 0 }

// Max returns the greater of a and b.
func Max(a, b HLC) HLC {
	if a.Less(b) {
		return b
	}
	return a
}

// Min returns the lesser of a and b.
func Min(a, b HLC) HLC {
	if b.Less(a) {
		return b
	}
	return a
}

// Time returns the physical part of h as a time.Time in UTC.
func (h HLC) Time() time.Time { return time.UnixMilli(int64(h.Timestamp)).UTC() }

// String returns "timestamp:counter:device", for example
// "1764130555123:0:6ba7b810-9dad-11d1-80b4-00c04fd430c8". Parse reads it back.
func (h HLC) String() string {
	return strconv.FormatUint(h.Timestamp, 10) + ":" + strconv.FormatUint(uint64(h.Counter), 10) + ":" + h.DeviceID.String()
}

// Parse reads the form written by String.
func Parse(s string) (HLC, error) {
	parts := strings.SplitN(s, ":", 3)
	if len(parts) != 3 {
		return HLC{}, fmt.Errorf("%w: %q is not timestamp:counter:device", ErrInvalid, s)
	}
	ts, err := strconv.ParseUint(parts[0], 10, 64)
	if err != nil {
		return HLC{}, fmt.Errorf("%w: timestamp %q: %v", ErrInvalid, parts[0], err)
	}
	ctr, err := strconv.ParseUint(parts[1], 10, 32)
	if err != nil {
		return HLC{}, fmt.Errorf("%w: counter %q: %v", ErrInvalid, parts[1], err)
	}
	dev, err := uuid.Parse(parts[2])
	if err != nil {
		return HLC{}, fmt.Errorf("%w: device %q: %v", ErrInvalid, parts[2], err)
	}
	return HLC{Timestamp: ts, Counter: uint32(ctr), DeviceID: dev}, nil
}

// AppendKey appends the KeySize-byte key encoding of h to b and returns the
// extended slice. Keys compare with bytes.Compare exactly as HLCs compare.
func (h HLC) AppendKey(b []byte) []byte {
	b = binary.BigEndian.AppendUint64(b, h.Timestamp)
	b = binary.BigEndian.AppendUint32(b, h.Counter)
	return append(b, h.DeviceID[:]...)
}

// Key returns the key encoding of h in a new slice.
func (h HLC) Key() []byte { return h.AppendKey(make([]byte, 0, KeySize)) }

// FromKey decodes a key written by AppendKey. It reads exactly KeySize bytes
// and fails if b is shorter.
func FromKey(b []byte) (HLC, error) {
	if len(b) < KeySize {
		return HLC{}, fmt.Errorf("%w: key of %d bytes, want %d", ErrInvalid, len(b), KeySize)
	}
	var h HLC
	h.Timestamp = binary.BigEndian.Uint64(b[0:8])
	h.Counter = binary.BigEndian.Uint32(b[8:12])
	copy(h.DeviceID[:], b[12:KeySize])
	return h, nil
}
