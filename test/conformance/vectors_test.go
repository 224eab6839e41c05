package conformance

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/fxamacker/cbor/v2"
	"github.com/google/uuid"
	"github.com/klauspost/compress/s2"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/syncnode/syncnode/hlc"
	"github.com/syncnode/syncnode/protocol"
)

// vectorsPath is the vector file, relative to this package.
const vectorsPath = "../../docs/conformance/vectors.json"

var update = flag.Bool("update", false, "rewrite "+vectorsPath)

// File is the vector file: who takes part, then the vectors in the order
// they run. docs/conformance/README.md describes every field.
type File struct {
	Format   string   `json:"format"`
	Protocol string   `json:"protocol"`
	About    []string `json:"about"`
	Setup    Setup    `json:"setup"`
	Vectors  []Vector `json:"vectors"`
}

// Setup is the state of the node under test before the first vector.
type Setup struct {
	About          []string        `json:"about"`
	Library        string          `json:"library"`
	UnknownLibrary string          `json:"unknown_library"`
	Peers          map[string]Peer `json:"peers"`
	MaxFrameSize   int             `json:"max_frame_size"`
	MaxDriftMillis int             `json:"max_drift_ms"`
}

// Peer is one identity of the tester.
type Peer struct {
	About string `json:"about"`
	// Seed is the Ed25519 private key seed (RFC 8032) of its libp2p key.
	Seed   string `json:"ed25519_seed"`
	PeerID string `json:"peer_id"`
	Device string `json:"device"`
	Member bool   `json:"member"`
	Dials  bool   `json:"dials"`
}

// Vector is one exchange and its outcome.
type Vector struct {
	Name     string   `json:"name"`
	About    string   `json:"about"`
	Rules    []string `json:"rules,omitempty"`
	Requires []string `json:"requires,omitempty"`
	As       string   `json:"as"`
	Steps    []Step   `json:"steps"`
}

// Step is one action of the tester, or one thing it expects.
type Step struct {
	Stream string         `json:"stream,omitempty"`
	Send   string         `json:"send,omitempty"`
	What   string         `json:"what,omitempty"`
	Diag   string         `json:"diag,omitempty"`
	Close  bool           `json:"close,omitempty"`
	Expect string         `json:"expect,omitempty"`
	Fields map[string]any `json:"fields,omitempty"`
}

// The identities of the vectors.
var (
	vLib     = uuid.MustParse("11111111-1111-4111-8111-111111111111")
	vOtherLi = uuid.MustParse("22222222-2222-4222-8222-222222222222")
	vMember  = uuid.MustParse("00000000-0000-4000-8000-00000000000a")
	vStrange = uuid.MustParse("00000000-0000-4000-8000-00000000000b")
	vAbsent  = uuid.MustParse("00000000-0000-4000-8000-00000000000c")
	vRec1    = uuid.MustParse("01010101-0101-4101-8101-010101010101")
	vRec2    = uuid.MustParse("02020202-0202-4202-8202-020202020202")
	vRec3    = uuid.MustParse("03030303-0303-4303-8303-030303030303")
)

// seed returns the Ed25519 seed of 32 bytes b.
func seed(b byte) []byte { return bytes.Repeat([]byte{b}, ed25519.SeedSize) }

// keyOf returns the libp2p key and peer ID of an Ed25519 seed.
func keyOf(s []byte) (crypto.PrivKey, peer.ID) {
	k, err := crypto.UnmarshalEd25519PrivateKey(ed25519.NewKeyFromSeed(s))
	if err != nil {
		panic(err)
	}
	id, err := peer.IDFromPrivateKey(k)
	if err != nil {
		panic(err)
	}
	return k, id
}

// base is the timestamp of the vectors' HLCs, as in PROTOCOL.md §10.
const base = 1764130555000

// future is 2100-01-01, far beyond any MaxDrift.
const future = 4102444800000

func hlcOf(dev uuid.UUID, ms uint64, counter uint32) hlc.HLC {
	return hlc.HLC{Timestamp: base + ms, Counter: counter, DeviceID: dev}
}

func ptr[T any](v T) *T { return &v }

// rawMode encodes like the protocol's encoder, without its validation: for
// frames that break a rule of the schema.
var rawMode = func() cbor.EncMode {
	o := cbor.CoreDetEncOptions()
	o.NilContainers = cbor.NilContainerAsEmpty
	o.ByteArray = cbor.ByteArrayToByteSlice
	o.BinaryMarshaler = cbor.BinaryMarshalerNone
	em, err := o.EncMode()
	if err != nil {
		panic(err)
	}
	return em
}()

// body returns the frame body of m; valid messages go through
// protocol.Encode, so the bytes are exactly what a node writes.
func body(m protocol.Message) []byte {
	b, err := protocol.Encode(m)
	if err != nil {
		panic(fmt.Sprintf("encoding %s: %v", m.Name(), err))
	}
	return b
}

// rawBody returns {variant: v} encoded without validation.
func rawBody(variant string, v any) []byte {
	b, err := rawMode.Marshal(map[string]any{variant: v})
	if err != nil {
		panic(err)
	}
	return b
}

// frame returns body with its length prefix.
func frame(body []byte) []byte {
	var p [binary.MaxVarintLen64]byte
	n := binary.PutUvarint(p[:], uint64(len(body)))
	return append(p[:n:n], body...)
}

// snappy returns the compressed frame body of a plain one (PROTOCOL.md §3.1).
func snappy(plain []byte) []byte {
	return append([]byte{0x01}, s2.EncodeSnappy(nil, plain)...)
}

func payload(v any) cbor.RawMessage {
	b, err := rawMode.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

func bstr(b []byte) string { return "h'" + hex.EncodeToString(b) + "'" }

// builder assembles one vector.
type builder struct {
	v      Vector
	stream string
}

func vec(name, as, about string, rules ...string) *builder {
	return &builder{v: Vector{Name: name, As: as, About: about, Rules: rules}}
}

func (b *builder) requires(f ...string) *builder { b.v.Requires = f; return b }

// on makes the following steps act on the named stream (opened on first use).
func (b *builder) on(stream string) *builder { b.stream = stream; return b }

func (b *builder) step(s Step) *builder {
	if b.stream != "" && b.stream != "a" {
		s.Stream = b.stream
	}
	b.v.Steps = append(b.v.Steps, s)
	return b
}

// send writes one frame of body.
func (b *builder) send(what string, body []byte) *builder {
	d, err := cbor.Diagnose(body)
	if err != nil {
		d = ""
	}
	return b.step(Step{Send: hex.EncodeToString(frame(body)), What: what, Diag: d})
}

// sendMsg writes one frame of a valid message.
func (b *builder) sendMsg(what string, m protocol.Message) *builder { return b.send(what, body(m)) }

// sendWire writes bytes as they are (a broken frame).
func (b *builder) sendWire(what string, wire []byte) *builder {
	return b.step(Step{Send: hex.EncodeToString(wire), What: what})
}

func (b *builder) close() *builder { return b.step(Step{Close: true, What: "close the write side"}) }

func (b *builder) expect(variant, what string, fields map[string]any) *builder {
	return b.step(Step{Expect: variant, What: what, Fields: fields})
}

func (b *builder) expectHello() *builder {
	return b.expect("Hello", "the node's Hello", map[string]any{"library_id": bstr(vLib[:])})
}

// expectError expects an Error with code and library (uuid.Nil: none known).
func (b *builder) expectError(code protocol.Code, lib uuid.UUID) *builder {
	return b.expect("Error", code.String(), map[string]any{"code": int(code), "library_id": bstr(lib[:])})
}

// end expects the node to end the stream: after a refusal, the tester
// closes its write side and reads a clean end of stream or a reset.
func (b *builder) end() *builder {
	return b.step(Step{Expect: "end", What: "the node ends the stream"})
}

// probe sends a variant the node does not know and expects unknown_message:
// the session is still open and read.
func (b *builder) probe() *builder {
	return b.send("probe: an unknown variant", probeBody).expectError(protocol.CodeUnknownMessage, vLib)
}

var probeBody = rawBody("ConformanceProbe", map[string]any{"library_id": vLib[:]})

// buildVectors returns the vector file.
func buildVectors() File {
	_, pidM := keyOf(seed(0x0a))
	_, pidS := keyOf(seed(0x0b))
	_, pidA := keyOf(seed(0x0c))
	f := File{
		Format:   "syncnode-conformance/1",
		Protocol: protocol.ProtocolID,
		About: []string{
			"Conformance vectors of the syncnode sync protocol (docs/PROTOCOL.md): frames a peer sends to the node under test and the reply or outcome each must produce.",
			"Generated by `go test ./test/conformance -run TestVectorsUpToDate -update`; do not edit by hand. docs/conformance/README.md explains the format.",
		},
		Setup: Setup{
			About: []string{
				"The node under test holds library `library`, whose members are itself and the peers marked member; it holds no record of it, and no record is written in it but by the vectors. It does not hold `unknown_library`.",
				"The tester runs one libp2p host per peer it speaks as, with that peer's key, and dials the node; the node never dials the tester (it knows no address of it, and the tester's device IDs are smaller than any random one, so the tester opens every session).",
				"Vectors run in the order given, on the same node: some read back what earlier ones wrote.",
				"A node that implements shared-fields model types (PROTOCOL.md §11; the vectors that require shared-fields) also registers `note` as a shared-fields type.",
			},
			Library:        vLib.String(),
			UnknownLibrary: vOtherLi.String(),
			Peers: map[string]Peer{
				"member":   {About: "a member of the library: the tester speaks as it", Seed: hex.EncodeToString(seed(0x0a)), PeerID: pidM.String(), Device: vMember.String(), Member: true, Dials: true},
				"stranger": {About: "not a member of anything the node holds", Seed: hex.EncodeToString(seed(0x0b)), PeerID: pidS.String(), Device: vStrange.String(), Dials: true},
				"absent":   {About: "a member that never connects: claims of its device are lies", Seed: hex.EncodeToString(seed(0x0c)), PeerID: pidA.String(), Device: vAbsent.String(), Member: true},
			},
			MaxFrameSize:   protocol.DefaultMaxFrameSize,
			MaxDriftMillis: 5 * 60 * 1000,
		},
	}
	add := func(b *builder) { f.Vectors = append(f.Vectors, b.v) }

	hello := &protocol.Hello{LibraryID: vLib, DeviceID: vMember, Versions: []uint32{protocol.Version}, Clock: hlcOf(vMember, 0, 0)}
	helloSnappy := *hello
	helloSnappy.Compression = []string{protocol.CompressionSnappy}
	strangerHello := &protocol.Hello{LibraryID: vLib, DeviceID: vStrange, Versions: []uint32{protocol.Version}, Clock: hlcOf(vStrange, 0, 0)}
	tag := func(name string) cbor.RawMessage { return payload(map[string]any{"name": name}) }
	sharedFrom := func(dev uuid.UUID, ts uint64, model string, rec uuid.UUID, prev *hlc.HLC) *protocol.SharedChange {
		return &protocol.SharedChange{LibraryID: vLib, HLC: hlc.HLC{Timestamp: ts, DeviceID: dev}, ModelType: model,
			RecordUUID: rec, ChangeType: protocol.Insert, Data: tag("conformance"), Prev: prev}
	}
	heartbeat := &protocol.Heartbeat{LibraryID: vLib, DeviceID: vMember, Clock: hlcOf(vMember, 1, 0)}

	// ---- good sessions ----
	add(vec("session/hello", "member",
		"A member's Hello is answered with the node's Hello; the session stays open.").
		sendMsg("the member's Hello", hello).expectHello().probe())
	add(vec("session/heartbeat-and-error-are-taken", "member",
		"A Heartbeat and an Error from the peer are taken without an answer (an Error is never answered with one).").
		sendMsg("the member's Hello", hello).expectHello().
		sendMsg("a Heartbeat", heartbeat).
		sendMsg("an Error", &protocol.Error{LibraryID: vLib, Code: 99, Message: "a code from a newer peer"}).
		probe())
	first := hlcOf(vMember, 1000, 0)
	add(vec("session/shared-change-is-applied", "member",
		"A live SharedChange of the member is applied: a catch-up request on a second stream returns it, in one page that ends the response.").
		sendMsg("the member's Hello", hello).expectHello().
		sendMsg("the member's first tag change", sharedFrom(vMember, first.Timestamp, "tag", vRec1, nil)).
		probe().
		on("b").
		sendMsg("a SharedChangeRequest for tags", &protocol.SharedChangeRequest{LibraryID: vLib, Limit: 100, ModelTypes: []string{"tag"}}).
		close().
		expect("SharedChangeResponse", "the member's tag stream, up to its change", map[string]any{
			"library_id": bstr(vLib[:]), "device_id": bstr(vMember[:]), "model_type": "tag",
			"entries": map[string]any{"count": 1}, "has_more": false,
			"complete": []any{first.Timestamp, 0, bstr(vMember[:])},
		}).
		end())
	owned := hlcOf(vMember, 2000, 0)
	add(vec("session/state-change-is-applied", "member",
		"A live StateChange of the member is applied: a StateRequest for the member's locations returns it.").
		sendMsg("the member's Hello", hello).expectHello().
		sendMsg("the member's first location", &protocol.StateChange{LibraryID: vLib, ModelType: "location", RecordUUID: vRec2,
			DeviceID: vMember, Data: payload(map[string]any{"path": "/conformance"}), Timestamp: owned}).
		probe().
		on("b").
		sendMsg("a StateRequest for the member's locations", &protocol.StateRequest{LibraryID: vLib, Limit: 100,
			ModelTypes: []string{"location"}, DeviceID: ptr(vMember)}).
		close().
		expect("StateResponse", "the member's location stream", map[string]any{
			"library_id": bstr(vLib[:]), "device_id": bstr(vMember[:]), "model_type": "location",
			"records": map[string]any{"count": 1}, "has_more": false,
			"complete": []any{owned.Timestamp, 0, bstr(vMember[:])},
		}).
		end())
	add(vec("request/nothing-to-send", "member",
		"A request that selects nothing the node holds is answered with one end-marker page, then the end of the stream.").
		sendMsg("a SharedChangeRequest for albums", &protocol.SharedChangeRequest{LibraryID: vLib, Limit: 100, ModelTypes: []string{"album"}}).
		close().
		expect("SharedChangeResponse", "the end marker", map[string]any{
			"device_id": bstr(uuid.Nil[:]), "model_type": "", "entries": map[string]any{"count": 0}, "has_more": false,
		}).
		end())
	add(vec("request/state-request-selects-owner", "member",
		"A StateRequest with a device_id selects that owner's streams only: asked for the absent member's locations, the node, which holds the member's (written by an earlier vector), sends the end marker alone.").
		sendMsg("a StateRequest for the absent member's locations", &protocol.StateRequest{LibraryID: vLib, Limit: 100,
			ModelTypes: []string{"location"}, DeviceID: ptr(vAbsent)}).
		close().
		expect("StateResponse", "the end marker", map[string]any{
			"device_id": bstr(uuid.Nil[:]), "model_type": "", "records": map[string]any{"count": 0}, "has_more": false,
		}).
		end())
	add(vec("session/compressed-frames", "member",
		"A peer whose Hello lists snappy may be sent compressed frames; frames compressed by the peer after the node's Hello (which lists snappy) are accepted.").
		requires("snappy").
		sendMsg("the member's Hello, accepting snappy", &helloSnappy).expectHello().
		send("a snappy-compressed Heartbeat", snappy(body(heartbeat))).
		probe())
	add(vec("session/duplicate-replaces", "member",
		"A second session of the same peer and library replaces the first: the node resets the older stream, without an Error frame, and keeps the newer.").
		sendMsg("the member's Hello", hello).expectHello().
		on("b").sendMsg("the member's Hello on a second session", hello).expectHello().
		on("a").end().
		on("b").probe())

	// ---- the first frame of a stream ----
	tooLarge := binary.AppendUvarint(nil, protocol.DefaultMaxFrameSize+1)
	add(vec("first/frame-too-large", "stranger",
		"A length prefix over the frame limit is refused before the body is read (none is sent), whoever sends it.",
		"framing: frame_too_large", "membership").
		sendWire("the length prefix of a body of 4 MiB + 1 byte, and no body", tooLarge).
		expectError(protocol.CodeFrameTooLarge, uuid.Nil).end())
	add(vec("first/length-not-shortest", "member",
		"A length prefix not in its shortest form is malformed, even when its value is over the limit.",
		"framing: malformed", "framing: frame_too_large").
		sendWire("4,194,305 with a trailing zero group", []byte{0x81, 0x80, 0x80, 0x82, 0x00}).
		expectError(protocol.CodeMalformed, uuid.Nil).end())
	add(vec("first/zero-length", "member", "A zero length prefix is malformed.", "framing: malformed").
		sendWire("a zero length", []byte{0x00}).expectError(protocol.CodeMalformed, uuid.Nil).end())
	add(vec("first/not-cbor", "stranger", "A body that is not CBOR is malformed, whoever sends it.",
		"decoding: malformed", "membership").
		send("three 0xff bytes", []byte{0xff, 0xff, 0xff}).expectError(protocol.CodeMalformed, uuid.Nil).end())
	add(vec("first/trailing-bytes", "member", "Bytes after the one data item of a body are malformed.", "decoding: malformed").
		send("a Hello and one byte more", append(body(hello), 0x00)).expectError(protocol.CodeMalformed, uuid.Nil).end())
	add(vec("first/tag", "member", "A tag anywhere, here the self-described CBOR tag around a Hello, is malformed.", "decoding: malformed").
		send("tag 55799 around a Hello", append([]byte{0xd9, 0xd9, 0xf7}, body(hello)...)).expectError(protocol.CodeMalformed, uuid.Nil).end())
	helloBody := body(hello)
	indefinite := append([]byte{0xbf}, helloBody[1:]...)
	indefinite = append(indefinite, 0xff)
	add(vec("first/indefinite-length", "member", "An indefinite-length map is malformed.", "decoding: malformed").
		send("the Hello's outer map with an indefinite length", indefinite).expectError(protocol.CodeMalformed, uuid.Nil).end())
	dup := append([]byte{0xa1, 0x65, 'H', 'e', 'l', 'l', 'o'}, pairs(
		"clock", []any{0, 0, uuid.Nil[:]}, "versions", []int{2}, "versions", []int{2},
		"device_id", vMember[:], "library_id", vLib[:], "watermarks", []any{})...)
	add(vec("first/duplicate-key", "member", "The same key twice in a map of the message is malformed.", "decoding: malformed").
		send("a Hello with versions twice", dup).expectError(protocol.CodeMalformed, uuid.Nil).end())
	add(vec("first/wrong-type", "member", "A known field of the wrong type (a UUID of 15 bytes) is malformed.", "decoding: malformed").
		send("a Hello whose device_id has 15 bytes", rawBody("Hello", map[string]any{"library_id": vLib[:], "device_id": vMember[:15],
			"versions": []int{2}, "clock": []any{0, 0, uuid.Nil[:]}, "watermarks": []any{}})).
		expectError(protocol.CodeMalformed, uuid.Nil).end())
	add(vec("first/malformed-unknown-variant", "member",
		"A frame of an unknown variant must still be well-formed: one with a tag inside is malformed, not unknown_message.",
		"decoding: malformed", "decoding: unknown_message").
		send("an unknown variant holding a tag", rawBody("ConformanceProbe", map[string]any{"library_id": vLib[:], "x": cbor.Tag{Number: 1, Content: 0}})).
		expectError(protocol.CodeMalformed, uuid.Nil).end())
	add(vec("first/unknown-variant", "member",
		"An unknown variant as the first frame is unknown_message, and the stream is reset (it is neither a session nor a request).",
		"decoding: unknown_message", "stream").
		send("an unknown variant", probeBody).expectError(protocol.CodeUnknownMessage, uuid.Nil).end())
	add(vec("first/unknown-variant-from-stranger", "stranger",
		"Decoding comes before membership: a stranger's unknown variant is unknown_message.",
		"decoding: unknown_message", "membership").
		send("an unknown variant", probeBody).expectError(protocol.CodeUnknownMessage, uuid.Nil).end())
	add(vec("first/invalid-from-stranger", "stranger",
		"The schema's rules come before membership: a stranger's Hello without versions is invalid.",
		"decoding: invalid", "membership").
		send("a Hello with no versions", rawBody("Hello", &protocol.Hello{LibraryID: vLib, DeviceID: vStrange, Clock: hlcOf(vStrange, 0, 0)})).
		expectError(protocol.CodeInvalid, uuid.Nil).end())
	add(vec("first/invalid-change", "member",
		"The schema's rules come before the stream's: a member's first frame that is an invalid change (a Delete with data) is invalid, not unexpected.",
		"decoding: invalid", "stream").
		send("a SharedChange Delete carrying data", rawBody("SharedChange", &protocol.SharedChange{LibraryID: vLib, HLC: hlcOf(vMember, 3000, 0),
			ModelType: "tag", RecordUUID: vRec3, ChangeType: protocol.Delete, Data: tag("x")})).
		expectError(protocol.CodeInvalid, uuid.Nil).end())
	add(vec("first/compressed-hello", "member",
		"A Hello or a request is never compressed: a compressed first frame is malformed (the node has accepted no compression on this stream yet).",
		"framing: malformed").
		requires("snappy").
		send("a snappy-compressed Hello", snappy(body(hello))).expectError(protocol.CodeMalformed, uuid.Nil).end())
	add(vec("first/stranger-hello", "stranger", "A stranger's Hello is refused; nothing of the library is sent.", "membership").
		sendMsg("the stranger's Hello", strangerHello).expectError(protocol.CodeNotMember, vLib).end())
	add(vec("first/stranger-claims-member", "stranger",
		"Membership comes before ownership: a stranger's Hello claiming a member's device is not_member.",
		"membership", "ownership").
		sendMsg("a Hello claiming the member's device", &protocol.Hello{LibraryID: vLib, DeviceID: vMember, Versions: []uint32{2}, Clock: hlcOf(vMember, 0, 0)}).
		expectError(protocol.CodeNotMember, vLib).end())
	add(vec("first/stranger-other-version", "stranger",
		"Membership comes before the version: a stranger's Hello speaking only major 3 is not_member.",
		"membership", "version").
		sendMsg("a stranger's Hello of major 3", &protocol.Hello{LibraryID: vLib, DeviceID: vStrange, Versions: []uint32{3}, Clock: hlcOf(vStrange, 0, 0)}).
		expectError(protocol.CodeNotMember, vLib).end())
	add(vec("first/stranger-change", "stranger",
		"Membership comes before the stream's rules: a stranger's change as a first frame is not_member, not unexpected.",
		"membership", "stream").
		sendMsg("a stranger's SharedChange", sharedFrom(vStrange, base+1000, "tag", vRec3, nil)).
		expectError(protocol.CodeNotMember, vLib).end())
	add(vec("first/stranger-request", "stranger", "A stranger's catch-up request is refused; nothing is sent.", "membership").
		sendMsg("a StateRequest", &protocol.StateRequest{LibraryID: vLib, Limit: 100}).close().
		expectError(protocol.CodeNotMember, vLib).end())
	add(vec("first/unknown-library", "member",
		"A library the node does not hold is answered not_member (not unknown_library), so that a peer cannot learn which libraries a node holds.",
		"membership").
		sendMsg("a Hello for another library", &protocol.Hello{LibraryID: vOtherLi, DeviceID: vMember, Versions: []uint32{2}, Clock: hlcOf(vMember, 0, 0)}).
		expectError(protocol.CodeNotMember, vOtherLi).end())
	add(vec("first/request-unknown-library", "member", "The same for a request.", "membership").
		sendMsg("a SharedChangeRequest for another library", &protocol.SharedChangeRequest{LibraryID: vOtherLi, Limit: 100}).close().
		expectError(protocol.CodeNotMember, vOtherLi).end())
	add(vec("first/change", "member", "A stream must start with Hello or a request: a member's change as its first frame is unexpected.", "stream").
		sendMsg("the member's SharedChange", sharedFrom(vMember, base+3000, "tag", vRec3, ptr(first))).
		expectError(protocol.CodeUnexpected, vLib).end())
	add(vec("first/lying-change", "member",
		"The stream's rules come before ownership: a member's first frame that is a change in another device's name is unexpected.",
		"stream", "ownership").
		sendMsg("a StateChange in the absent member's name", &protocol.StateChange{LibraryID: vLib, ModelType: "location", RecordUUID: vRec3,
			DeviceID: vAbsent, Data: tag("x"), Timestamp: hlcOf(vAbsent, 3000, 0)}).
		expectError(protocol.CodeUnexpected, vLib).end())
	add(vec("first/response", "member", "A response as a first frame is unexpected.", "stream").
		sendMsg("a SharedChangeResponse end marker", &protocol.SharedChangeResponse{LibraryID: vLib}).
		expectError(protocol.CodeUnexpected, vLib).end())
	add(vec("first/hello-claims-other", "member", "A member's Hello claiming another member's device is refused.", "ownership").
		sendMsg("a Hello claiming the absent member", &protocol.Hello{LibraryID: vLib, DeviceID: vAbsent, Versions: []uint32{2}, Clock: hlcOf(vAbsent, 0, 0)}).
		expectError(protocol.CodeOwnership, vLib).end())
	add(vec("first/hello-claims-other-version", "member",
		"Ownership comes before the version.", "ownership", "version").
		sendMsg("a Hello of major 3 claiming the absent member", &protocol.Hello{LibraryID: vLib, DeviceID: vAbsent, Versions: []uint32{3}, Clock: hlcOf(vAbsent, 0, 0)}).
		expectError(protocol.CodeOwnership, vLib).end())
	add(vec("first/other-version", "member", "A Hello that does not list major 2 is refused.", "version").
		sendMsg("a Hello of majors 3 and 4", &protocol.Hello{LibraryID: vLib, DeviceID: vMember, Versions: []uint32{3, 4}, Clock: hlcOf(vMember, 0, 0)}).
		expectError(protocol.CodeUnsupportedVersion, vLib).end())

	// ---- later frames of a session ----
	session := func(name, about string, rules ...string) *builder {
		return vec(name, "member", about, rules...).sendMsg("the member's Hello", hello).expectHello()
	}
	add(session("session/unknown-variant", "An unknown variant after Hello is answered unknown_message and ignored; the session goes on.",
		"decoding: unknown_message").probe().probe())
	add(session("session/malformed", "A malformed frame ends the session.", "decoding: malformed").
		send("three 0xff bytes", []byte{0xff, 0xff, 0xff}).expectError(protocol.CodeMalformed, vLib).end())
	add(session("session/frame-too-large", "A frame over the limit ends the session; the body is not read.", "framing: frame_too_large").
		sendWire("the length prefix of a body of 4 MiB + 1 byte", tooLarge).expectError(protocol.CodeFrameTooLarge, vLib).end())
	add(session("session/invalid-lying-change", "The schema's rules come before ownership: an invalid change in another device's name is invalid.",
		"decoding: invalid", "ownership").
		send("a SharedChange Delete with data, of the absent member", rawBody("SharedChange", &protocol.SharedChange{LibraryID: vLib,
			HLC: hlcOf(vAbsent, 3000, 0), ModelType: "tag", RecordUUID: vRec3, ChangeType: protocol.Delete, Data: tag("x")})).
		expectError(protocol.CodeInvalid, vLib).end())
	add(session("session/other-library", "Every frame of a session names its library: another library is unexpected, before any claim in the frame is looked at.",
		"stream", "ownership").
		sendMsg("a Heartbeat of another library, in the absent member's name", &protocol.Heartbeat{LibraryID: vOtherLi, DeviceID: vAbsent, Clock: hlcOf(vAbsent, 1, 0)}).
		expectError(protocol.CodeUnexpected, vLib).end())
	add(session("session/second-hello", "A second Hello on a session is unexpected, before its claims are looked at.", "stream", "ownership").
		sendMsg("a second Hello, claiming the absent member", &protocol.Hello{LibraryID: vLib, DeviceID: vAbsent, Versions: []uint32{2}, Clock: hlcOf(vAbsent, 0, 0)}).
		expectError(protocol.CodeUnexpected, vLib).end())
	add(session("session/request", "A request on a session is unexpected.", "stream").
		sendMsg("a SharedChangeRequest", &protocol.SharedChangeRequest{LibraryID: vLib, Limit: 100}).
		expectError(protocol.CodeUnexpected, vLib).end())
	add(session("session/lying-heartbeat", "A Heartbeat in another device's name is refused.", "ownership").
		sendMsg("a Heartbeat of the absent member", &protocol.Heartbeat{LibraryID: vLib, DeviceID: vAbsent, Clock: hlcOf(vAbsent, 1, 0)}).
		expectError(protocol.CodeOwnership, vLib).end())
	add(session("session/lying-ack", "An AckSharedChanges from another device is refused.", "ownership").
		sendMsg("an ack from the absent member", &protocol.AckSharedChanges{LibraryID: vLib, FromDevice: vAbsent, UpToHLC: first, ModelType: "tag"}).
		expectError(protocol.CodeOwnership, vLib).end())
	add(session("session/lying-batch", "A SharedChangeBatch of another origin is refused whole.", "ownership").
		sendMsg("a batch of the absent member's changes", &protocol.SharedChangeBatch{LibraryID: vLib, Entries: []protocol.SharedChangeEntry{
			{HLC: hlcOf(vAbsent, 3000, 0), ModelType: "tag", RecordUUID: vRec3, ChangeType: protocol.Insert, Data: tag("forged")},
			{HLC: hlcOf(vAbsent, 3000, 1), ModelType: "album", RecordUUID: vRec3, ChangeType: protocol.Insert, Data: tag("forged")}}}).
		expectError(protocol.CodeOwnership, vLib).end())
	add(session("session/lying-unknown-model", "Ownership comes before the model type.", "ownership", "model type").
		sendMsg("a change of the absent member, of an unknown model type", sharedFrom(vAbsent, base+3000, "spaceship", vRec3, nil)).
		expectError(protocol.CodeOwnership, vLib).end())
	add(session("session/lying-future", "Ownership comes before the clock: a lie stamped in the future is refused, not quarantined.", "ownership", "clock").
		sendMsg("a StateChange of the absent member in 2100", &protocol.StateChange{LibraryID: vLib, ModelType: "location", RecordUUID: vRec3,
			DeviceID: vAbsent, Data: tag("x"), Timestamp: hlc.HLC{Timestamp: future, DeviceID: vAbsent}}).
		expectError(protocol.CodeOwnership, vLib).end())
	add(session("session/unknown-model", "A change of a model type the node has not registered is dropped with unknown_model_type; the session goes on.", "model type").
		sendMsg("a change of model type spaceship", sharedFrom(vMember, base+3000, "spaceship", vRec3, nil)).
		expectError(protocol.CodeUnknownModelType, vLib).probe())
	add(session("session/other-strategy", "A StateChange of a shared model type is unknown_model_type (registered with the other strategy); the session goes on.", "model type").
		sendMsg("a StateChange of model type tag", &protocol.StateChange{LibraryID: vLib, ModelType: "tag", RecordUUID: vRec3,
			DeviceID: vMember, Data: tag("x"), Timestamp: hlcOf(vMember, 3000, 0)}).
		expectError(protocol.CodeUnknownModelType, vLib).probe())
	add(session("session/unknown-model-future", "The model type comes before the clock: a change of an unknown model type stamped in the future is unknown_model_type.",
		"model type", "clock").
		sendMsg("a change of model type spaceship in 2100", sharedFrom(vMember, future, "spaceship", vRec3, nil)).
		expectError(protocol.CodeUnknownModelType, vLib).probe())
	add(session("session/future", "A change stamped more than MaxDrift ahead is quarantined and answered clock_skew; the session goes on.", "clock").
		sendMsg("a tag change in 2100", sharedFrom(vMember, future, "tag", vRec3, ptr(first))).
		expectError(protocol.CodeClockSkew, vLib).probe())
	add(session("session/compressed-corrupt", "A compressed frame that does not decompress is malformed.", "framing: malformed").
		requires("snappy").
		send("the algorithm byte and a Snappy block that lies about its length", []byte{0x01, 0x10, 0x00, 0x01}).
		expectError(protocol.CodeMalformed, vLib).end())
	add(session("session/compressed-bomb", "A compressed frame whose stated decompressed length is over the frame limit is frame_too_large, before anything is decompressed.",
		"framing: frame_too_large").
		requires("snappy").
		send("a Snappy block that claims 4 MiB + 1 byte", append([]byte{0x01}, binary.AppendUvarint(nil, protocol.DefaultMaxFrameSize+1)...)).
		expectError(protocol.CodeFrameTooLarge, vLib).end())

	// ---- shared-fields (PROTOCOL.md §11; the node registers note as shared-fields) ----
	note := func(dev uuid.UUID, ts uint64, data []byte) *protocol.SharedChange {
		return &protocol.SharedChange{LibraryID: vLib, HLC: hlc.HLC{Timestamp: ts, DeviceID: dev}, ModelType: "note",
			RecordUUID: vRec1, ChangeType: protocol.Insert, Data: data}
	}
	patch, err := protocol.EncodeFieldPatch(map[string]cbor.RawMessage{"title": payload("conformance"), "colour": protocol.Undefined})
	if err != nil {
		panic(err)
	}
	nullPatch := payload(map[string]any{"title": nil})
	state, err := protocol.EncodeFieldState(protocol.FieldState{Fields: map[string]protocol.FieldVersion{
		"title": {HLC: hlcOf(vMember, 4000, 0), Value: payload("conformance")}}})
	if err != nil {
		panic(err)
	}
	noteAt := hlcOf(vMember, 4000, 0)
	add(vec("session/fields-patch-is-applied", "member",
		"A live SharedChange of a shared-fields type whose data is a field patch (one field set, one removed with undefined) is applied: a catch-up request returns it, in one page that ends the response.").
		requires("shared-fields").
		sendMsg("the member's Hello", hello).expectHello().
		sendMsg("a note patch: title set, colour removed (undefined)", note(vMember, noteAt.Timestamp, patch)).
		probe().
		on("b").
		sendMsg("a SharedChangeRequest for notes", &protocol.SharedChangeRequest{LibraryID: vLib, Limit: 100, ModelTypes: []string{"note"}}).
		close().
		expect("SharedChangeResponse", "the member's note stream, up to its patch", map[string]any{
			"library_id": bstr(vLib[:]), "device_id": bstr(vMember[:]), "model_type": "note",
			"entries": map[string]any{"count": 1}, "has_more": false,
			"complete": []any{noteAt.Timestamp, 0, bstr(vMember[:])},
		}).
		end())
	add(session("session/fields-null", "A field patch that sets a field to null is invalid (a field is removed with undefined, never null); the session ends.",
		"field data").
		requires("shared-fields").
		sendMsg("a note patch setting title to null", note(vMember, base+5000, nullPatch)).
		expectError(protocol.CodeInvalid, vLib).end())
	add(session("session/fields-state-pushed", "A live push of a shared-fields type carrying a field state (which only catch-up pages may carry) is invalid; the session ends.",
		"field data").
		requires("shared-fields").
		sendMsg("a note change whose data is a field state", note(vMember, base+5000, state)).
		expectError(protocol.CodeInvalid, vLib).end())
	add(session("session/lying-fields", "Ownership comes before the field data: a null patch in another device's name is refused as a lie.",
		"ownership", "field data").
		requires("shared-fields").
		sendMsg("a note patch setting title to null, of the absent member", note(vAbsent, base+5000, nullPatch)).
		expectError(protocol.CodeOwnership, vLib).end())
	add(session("session/fields-unknown-model", "The model type comes before the field data, over the whole batch: a batch whose first entry is a null patch of a note and whose second is of an unknown model type is unknown_model_type (dropped whole); the session goes on.",
		"model type", "field data").
		requires("shared-fields").
		sendMsg("a batch: a note patch setting title to null, then a change of model type spaceship", &protocol.SharedChangeBatch{LibraryID: vLib, Entries: []protocol.SharedChangeEntry{
			{HLC: hlcOf(vMember, 5000, 0), ModelType: "note", RecordUUID: vRec1, ChangeType: protocol.Update, Data: nullPatch},
			{HLC: hlcOf(vMember, 5000, 1), ModelType: "spaceship", RecordUUID: vRec3, ChangeType: protocol.Insert, Data: tag("x")}}}).
		expectError(protocol.CodeUnknownModelType, vLib).probe())
	add(session("session/fields-null-future", "The field data comes before the clock: a null patch stamped in the future is invalid, not quarantined.",
		"field data", "clock").
		requires("shared-fields").
		sendMsg("a note patch setting title to null, in 2100", note(vMember, future, nullPatch)).
		expectError(protocol.CodeInvalid, vLib).end())
	return f
}

// pairs encodes key/value pairs as one CBOR map in the order given, keys
// repeated if they are: for frames that break a rule of the encoding.
func pairs(kv ...any) []byte {
	out := []byte{0xa0 | byte(len(kv)/2)}
	for _, v := range kv {
		b, err := rawMode.Marshal(v)
		if err != nil {
			panic(err)
		}
		out = append(out, b...)
	}
	return out
}

// TestVectorsUpToDate checks that docs/conformance/vectors.json is what
// this package generates; with -update it rewrites the file.
func TestVectorsUpToDate(t *testing.T) {
	f := buildVectors()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(f); err != nil {
		t.Fatal(err)
	}
	current, err := os.ReadFile(vectorsPath)
	if err == nil && bytes.Equal(current, buf.Bytes()) {
		return
	}
	if !*update {
		t.Fatalf("%s is stale or missing (%v); run: go test ./test/conformance -run TestVectorsUpToDate -update", vectorsPath, err)
	}
	if err := os.WriteFile(vectorsPath, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("rewrote %s with %d vectors", vectorsPath, len(f.Vectors))
}

// Every vector's name is unique and says where it runs.
func TestVectorNames(t *testing.T) {
	seen := map[string]bool{}
	for _, v := range buildVectors().Vectors {
		if seen[v.Name] {
			t.Errorf("two vectors named %s", v.Name)
		}
		seen[v.Name] = true
		if !strings.HasPrefix(v.Name, "session/") && !strings.HasPrefix(v.Name, "first/") && !strings.HasPrefix(v.Name, "request/") {
			t.Errorf("vector %s: the name should start with first/, session/ or request/", v.Name)
		}
	}
}
