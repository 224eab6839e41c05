package pairing

import (
	"fmt"

	"github.com/libp2p/go-libp2p/core/peer"
)

// DeviceModel is the shared model type whose records are a library's
// members: the record ID is the device ID and the payload a DeviceRecord
// (PAIRING.md §6). A live record makes its device a member; a deleted one
// (a tombstone) removes it.
const DeviceModel = "device"

// DeviceRecord is the payload of a device record: the libp2p peer its
// device is bound to, a name for people, and who added it when.
type DeviceRecord struct {
	// PeerID is the device's libp2p peer ID in its text form ("12D3KooW…").
	PeerID string `cbor:"peer_id" json:"peer_id"`
	// Name is the device's name for people, at most MaxNameLen bytes.
	Name string `cbor:"name" json:"name"`
	// AddedBy is the device ID of the member that added it, in the UUID's
	// text form; empty for the device that created the library.
	AddedBy string `cbor:"added_by,omitempty" json:"added_by,omitempty"`
	// AddedAt is when it was added, in ms since the Unix epoch (the adding
	// device's wall clock).
	AddedAt int64 `cbor:"added_at" json:"added_at"`
}

// Encode returns the record's payload: deterministic CBOR (RFC 8949
// §4.2.1), a map with the keys in the order name, peer_id, added_at,
// added_by, like every payload a node writes.
func (d DeviceRecord) Encode() []byte {
	b, err := encMode.Marshal(d)
	if err != nil {
		panic("pairing: encoding a device record cannot fail: " + err.Error())
	}
	return b
}

// DecodeDeviceRecord reads a device record's payload. Its peer_id must be a
// peer ID: a record that fails here makes nobody a member. The keys may come
// in any order (records written before December 2026 have them in the order
// peer_id, name, added_by, added_at) and unknown keys are ignored; name,
// added_by and added_at are informational and not checked further.
func DecodeDeviceRecord(b []byte) (DeviceRecord, error) {
	var d DeviceRecord
	if len(b) > MaxFrameSize {
		return d, fmt.Errorf("pairing: device record of %d bytes, at most %d", len(b), MaxFrameSize)
	}
	if err := decMode.Unmarshal(b, &d); err != nil {
		return DeviceRecord{}, fmt.Errorf("pairing: malformed device record: %w", err)
	}
	if _, err := peer.Decode(d.PeerID); err != nil {
		return DeviceRecord{}, fmt.Errorf("pairing: device record with peer ID %q: %w", d.PeerID, err)
	}
	return d, nil
}
