package protocol

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/fxamacker/cbor/v2"
	"github.com/google/uuid"
)

func TestRoundTrip(t *testing.T) {
	for _, ex := range examples() {
		t.Run(ex.msg.Name(), func(t *testing.T) {
			b, err := Encode(ex.msg)
			if err != nil {
				t.Fatalf("%s: Encode: got error %v, want nil", ex.title, err)
			}
			got, err := Decode(b)
			if err != nil {
				t.Fatalf("%s: Decode(%x): got error %v, want nil", ex.title, b, err)
			}
			if !reflect.DeepEqual(got, ex.msg) {
				t.Fatalf("%s: Decode(Encode(m)):\n got %#v\nwant %#v", ex.title, got, ex.msg)
			}
			again, err := Encode(got)
			if err != nil {
				t.Fatalf("%s: second Encode: %v", ex.title, err)
			}
			if !bytes.Equal(again, b) {
				t.Fatalf("%s: second Encode:\n got %x\nwant %x", ex.title, again, b)
			}
		})
	}
}

func TestEveryVariantHasAnExample(t *testing.T) {
	seen := map[string]bool{}
	for _, ex := range examples() {
		seen[ex.msg.Name()] = true
	}
	for _, name := range messageNames {
		if !seen[name] {
			t.Errorf("no example of %s in examples()", name)
		}
		if m := newMessage([]byte(name)); m == nil || m.Name() != name {
			t.Errorf("newMessage(%q) = %v, want a %s", name, m, name)
		}
	}
}

// TestDeterministic checks that encoding is a function of the message and is
// RFC 8949 §4.2.1 core deterministic: decoding a frame generically and
// re-encoding it with core deterministic options changes nothing (shortest
// heads, sorted keys, definite lengths).
func TestDeterministic(t *testing.T) {
	generic, err := cbor.DecOptions{MaxNestedLevels: 64}.DecMode()
	if err != nil {
		t.Fatal(err)
	}
	canon, err := cbor.CoreDetEncOptions().EncMode()
	if err != nil {
		t.Fatal(err)
	}
	for _, ex := range examples() {
		a, err := Encode(ex.msg)
		if err != nil {
			t.Fatalf("%s: %v", ex.title, err)
		}
		b, err := Encode(ex.msg)
		if err != nil {
			t.Fatalf("%s: %v", ex.title, err)
		}
		if !bytes.Equal(a, b) {
			t.Errorf("%s: two encodings differ:\n%x\n%x", ex.title, a, b)
		}
		var v any
		if err := generic.Unmarshal(a, &v); err != nil {
			t.Fatalf("%s: generic decode: %v", ex.title, err)
		}
		c, err := canon.Marshal(v)
		if err != nil {
			t.Fatalf("%s: canonical re-encode: %v", ex.title, err)
		}
		if !bytes.Equal(a, c) {
			t.Errorf("%s: not in core deterministic form:\n got %x\nwant %x", ex.title, a, c)
		}
	}
}

// TestDecodeAcceptsNonCanonical: the decoder is strict about well-formedness
// and limits, not about canonical form, so that a peer with another CBOR
// library (serde writes struct fields in declaration order) is understood.
func TestDecodeAcceptsNonCanonical(t *testing.T) {
	// Fields in serde's declaration order, not sorted; a one-byte head
	// written in its two-byte form.
	body := cMap(
		f("library_id", cUUID(exLibrary)),
		f("from_device", cUUID(exDevA)),
		f("up_to_hlc", cHLC(hlcB(40, 0))),
		kv{cText("model_type"), []byte{0x78, 0x03, 't', 'a', 'g'}},
	)
	m, err := Decode(cFrame("AckSharedChanges", body))
	if err != nil {
		t.Fatalf("Decode: got %v, want nil", err)
	}
	want := &AckSharedChanges{LibraryID: exLibrary, FromDevice: exDevA, UpToHLC: hlcB(40, 0), ModelType: "tag"}
	if !reflect.DeepEqual(m, want) {
		t.Fatalf("Decode:\n got %#v\nwant %#v", m, want)
	}
}

func TestDecodeIgnoresUnknownFields(t *testing.T) {
	want := &AckSharedChanges{LibraryID: exLibrary, FromDevice: exDevA, UpToHLC: hlcB(40, 0), ModelType: "tag"}
	for name, extra := range map[string]kv{
		"scalar":         f("priority", cUint(7)),
		"nested":         f("future", cMap(f("a", cArray(cText("x"), cBytes([]byte{1}))))),
		"case variant":   f("Model_Type", cText("album")),
		"deeply nested":  f("deep", nested(MaxNesting-2)),
		"max collection": f("big", cat(cHead(majorArray, MaxCollectionSize), bytes.Repeat([]byte{0}, MaxCollectionSize))),
	} {
		t.Run(name, func(t *testing.T) {
			m, err := Decode(cFrame("AckSharedChanges", ackBody(extra)))
			if err != nil {
				t.Fatalf("Decode: got %v, want nil", err)
			}
			if !reflect.DeepEqual(m, want) {
				t.Fatalf("Decode:\n got %#v\nwant %#v", m, want)
			}
		})
	}
}

func TestDecodeNullData(t *testing.T) {
	// data: null is the same as no data: a delete may carry it, a write
	// may not.
	body := func(ct string) []byte {
		return cMap(
			f("library_id", cUUID(exLibrary)),
			f("hlc", cHLC(hlcB(20, 0))),
			f("model_type", cText("tag")),
			f("record_uuid", cUUID(exRec1)),
			f("change_type", cText(ct)),
			f("data", cNull()),
			f("prev", cNull()),
		)
	}
	m, err := Decode(cFrame("SharedChange", body("Delete")))
	if err != nil {
		t.Fatalf("Decode(Delete with data null): got %v, want nil", err)
	}
	if sc := m.(*SharedChange); sc.Data != nil || sc.Prev != nil {
		t.Fatalf("Decode(Delete with data null): got data %x prev %v, want both nil", sc.Data, sc.Prev)
	}
	if _, err := Decode(cFrame("SharedChange", body("Insert"))); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Decode(Insert with data null): got %v, want ErrInvalid", err)
	}
}

func TestDecodeUnknownErrorCode(t *testing.T) {
	m, err := Decode(cFrame("Error", cMap(f("library_id", cUUID(uuid.Nil)), f("code", cUint(60000)), f("message", cText("from the future")))))
	if err != nil {
		t.Fatalf("Decode: got %v, want nil", err)
	}
	e := m.(*Error)
	if e.Code != 60000 || e.Code.String() != "code(60000)" || !errors.Is(e.Err(), ErrUnknownCode) {
		t.Fatalf("got code %d (%s), Err() = %v; want 60000, code(60000), ErrUnknownCode", e.Code, e.Code, e.Err())
	}
}

func TestDecodeRejects(t *testing.T) {
	valid := cFrame("AckSharedChanges", ackBody())
	if _, err := Decode(valid); err != nil {
		t.Fatalf("the base frame does not decode: %v", err)
	}
	withHLC := func(h []byte) []byte {
		return cFrame("AckSharedChanges", cMap(
			f("library_id", cUUID(exLibrary)), f("from_device", cUUID(exDevA)),
			f("up_to_hlc", h), f("model_type", cText("tag"))))
	}
	withLib := func(v []byte) []byte {
		return cFrame("AckSharedChanges", cMap(
			f("library_id", v), f("from_device", cUUID(exDevA)),
			f("up_to_hlc", cHLC(hlcB(40, 0))), f("model_type", cText("tag"))))
	}
	stateChange := func(data []byte) []byte {
		return cFrame("StateChange", cMap(
			f("library_id", cUUID(exLibrary)), f("model_type", cText("location")),
			f("record_uuid", cUUID(exRec1)), f("device_id", cUUID(exDevA)),
			f("data", data), f("timestamp", cHLC(hlcA(0, 0)))))
	}
	if _, err := Decode(stateChange(nested(MaxNesting - 2))); err != nil {
		t.Fatalf("a payload nested to exactly MaxNesting over the frame: got %v, want nil", err)
	}
	tooManyVersions := cFrame("Hello", cMap(
		f("library_id", cUUID(exLibrary)), f("device_id", cUUID(exDevA)),
		f("versions", cat(cHead(majorArray, MaxCollectionSize+1), bytes.Repeat([]byte{2}, MaxCollectionSize+1))),
		f("clock", cHLC(HLC{})), f("watermarks", cArray())))

	for _, tc := range []struct {
		name  string
		in    []byte
		want  error
		shows string // a substring the error must contain
	}{
		{"empty", nil, ErrMalformed, "end of data"},
		{"not CBOR", []byte{0xff}, ErrMalformed, ""},
		{"reserved additional info", []byte{0x1c}, ErrMalformed, "additional information"},
		{"text at top", cText("Hello"), ErrMalformed, "top-level value"},
		{"array at top", cArray(cText("Hello"), ackBody()), ErrMalformed, "top-level value"},
		{"empty map at top", cMap(), ErrMalformed, "top-level value"},
		{"two variants", cMap(f("AckSharedChanges", ackBody()), f("Hello", ackBody())), ErrMalformed, "top-level value"},
		{"integer variant name", cMap(kv{cUint(1), ackBody()}), ErrMalformed, "variant name"},
		{"byte string variant name", cMap(kv{cBytes([]byte("Hello")), ackBody()}), ErrMalformed, "variant name"},
		{"indefinite top-level map", cat([]byte{0xbf}, cText("AckSharedChanges"), ackBody(), []byte{0xff}), ErrMalformed, "indefinite"},
		{"indefinite body map", cat(cHead(majorMap, 1), cText("AckSharedChanges"), []byte{0xbf}, f("library_id", cUUID(exLibrary)).k, cUUID(exLibrary), []byte{0xff}), ErrMalformed, "indefinite"},
		{"indefinite text in payload", stateChange([]byte{0x7f, 0x61, 'a', 0xff}), ErrMalformed, "indefinite"},
		{"tag in payload", stateChange(cat([]byte{0xc1}, cUint(5))), ErrMalformed, "tag"},
		{"self-described CBOR tag", cat([]byte{0xd9, 0xd9, 0xf7}, valid), ErrMalformed, ""},
		{"tag around a UUID", withLib(cat([]byte{0xd8, 0x25}, cUUID(exLibrary))), ErrMalformed, "tag"},
		{"trailing byte", cat(valid, []byte{0x00}), ErrMalformed, "extraneous"},
		{"trailing frame", cat(valid, valid), ErrMalformed, "extraneous"},
		{"truncated", valid[:len(valid)-1], ErrMalformed, "end of data"},
		{"truncated variant name", valid[:5], ErrMalformed, "truncated"},
		{"missing body", cat(cHead(majorMap, 1), cText("Hello")), ErrMalformed, "missing"},
		{"null body", cFrame("Hello", cNull()), ErrMalformed, "must be a map"},
		{"array body", cFrame("Hello", cArray()), ErrMalformed, "must be a map"},
		{"duplicate key", cFrame("AckSharedChanges", ackBody(f("model_type", cText("tag")))), ErrMalformed, "duplicate"},
		{"duplicate unknown key", cFrame("AckSharedChanges", ackBody(f("x", cUint(1)), f("x", cUint(2)))), ErrMalformed, "duplicate"},
		{"duplicate key in a record", cFrame("StateBatch", cMap(
			f("library_id", cUUID(exLibrary)), f("model_type", cText("entry")), f("device_id", cUUID(exDevA)),
			f("records", cArray(cMap(f("record_uuid", cUUID(exRec1)), f("record_uuid", cUUID(exRec2)), f("data", cUint(1)), f("timestamp", cHLC(hlcA(0, 0)))))))), ErrMalformed, "duplicate"},
		{"too deep payload", stateChange(nested(MaxNesting - 1)), ErrMalformed, "nested"},
		{"too deep unknown field", cFrame("AckSharedChanges", ackBody(f("deep", nested(MaxNesting-1)))), ErrMalformed, "nested"},
		{"too deep unknown variant", cFrame("Future", cMap(f("deep", nested(MaxNesting-1)))), ErrMalformed, "nested"},
		{"array too large", tooManyVersions, ErrMalformed, "array"},
		{"map too large", cFrame("AckSharedChanges", cat(cHead(majorMap, MaxCollectionSize+1), bytes.Repeat(cat(cText("k"), cUint(0)), MaxCollectionSize+1))), ErrMalformed, "map"},
		{"UUID of 15 bytes", withLib(cBytes(exLibrary[:15])), ErrMalformed, "15 bytes"},
		{"UUID of 17 bytes", withLib(cBytes(append(exLibrary[:], 0))), ErrMalformed, "17 bytes"},
		{"empty UUID", withLib(cBytes(nil)), ErrMalformed, "0 bytes"},
		{"UUID as text", withLib(cText(exLibrary.String())), ErrMalformed, "text string"},
		{"UUID as array", withLib(cArray(cUint(1))), ErrMalformed, "array"},
		{"HLC device of 15 bytes", withHLC(cArray(cUint(1), cUint(0), cBytes(exDevB[:15]))), ErrMalformed, "15 bytes"},
		{"HLC of 2 elements", withHLC(cArray(cUint(1), cUint(0))), ErrMalformed, "2 elements"},
		{"HLC of 4 elements", withHLC(cArray(cUint(1), cUint(0), cUUID(exDevB), cUint(0))), ErrMalformed, "4 elements"},
		{"HLC as map", withHLC(cMap(f("timestamp", cUint(1)))), ErrMalformed, "map"},
		{"HLC with negative timestamp", withHLC(cArray(cNeg(0), cUint(0), cUUID(exDevB))), ErrMalformed, "negative"},
		{"HLC counter over 32 bits", withHLC(cArray(cUint(1), cUint(1<<32), cUUID(exDevB))), ErrMalformed, "overflows"},
		{"text as integer", cFrame("AckSharedChanges", cMap(f("library_id", cUUID(exLibrary)), f("from_device", cUUID(exDevA)), f("up_to_hlc", cHLC(hlcB(40, 0))), f("model_type", cUint(3)))), ErrMalformed, "model_type"},
		{"bool as integer", cFrame("StateResponse", cMap(f("library_id", cUUID(exLibrary)), f("has_more", cUint(0)))), ErrMalformed, "has_more"},
		{"limit negative", cFrame("SharedChangeRequest", cMap(f("library_id", cUUID(exLibrary)), f("limit", cNeg(0)))), ErrMalformed, "limit"},
		{"limit over 32 bits", cFrame("SharedChangeRequest", cMap(f("library_id", cUUID(exLibrary)), f("limit", cUint(1<<32)))), ErrMalformed, "overflows"},
		{"limit as float", cFrame("SharedChangeRequest", cMap(f("library_id", cUUID(exLibrary)), f("limit", []byte{0xf9, 0x3c, 0x00}))), ErrMalformed, "limit"},
		{"change type as integer", cFrame("SharedChange", cMap(f("library_id", cUUID(exLibrary)), f("change_type", cUint(0)))), ErrMalformed, "change_type"},
		{"records as map", cFrame("StateBatch", cMap(f("library_id", cUUID(exLibrary)), f("records", cMap()))), ErrMalformed, "records"},
		{"code over 16 bits", cFrame("Error", cMap(f("code", cUint(1<<16)))), ErrMalformed, "overflows"},
		{"invalid UTF-8 in text", cFrame("AckSharedChanges", cMap(f("library_id", cUUID(exLibrary)), f("model_type", []byte{0x62, 0xc3, 0x28}))), ErrMalformed, "UTF-8"},
		{"invalid UTF-8 in a payload", stateChange([]byte{0x61, 0xff}), ErrMalformed, "UTF-8"},
		{"non-text key in body", cFrame("AckSharedChanges", cMap(kv{cArray(), cUint(1)})), ErrMalformed, "field name"},
		{"integer key in body", cFrame("AckSharedChanges", ackBody(kv{cUint(5), cText("x")})), ErrMalformed, "field name"},
		{"integer key in a record", cFrame("StateBatch", cMap(f("library_id", cUUID(exLibrary)), f("records", cArray(cMap(kv{cUint(1), cUint(1)}))))), ErrMalformed, "records[0]: field name"},
		{"null text", cFrame("AckSharedChanges", cMap(f("model_type", cNull()))), ErrMalformed, "model_type: want a text string, found null"},
		{"null bool", cFrame("StateResponse", cMap(f("has_more", cNull()))), ErrMalformed, "has_more"},
		{"null list", cFrame("StateBatch", cMap(f("records", cNull()))), ErrMalformed, "records"},
		{"null HLC", withHLC(cNull()), ErrMalformed, "up_to_hlc"},
		{"null in a list", cFrame("StateRequest", cMap(f("model_types", cArray(cText("a"), cNull())))), ErrMalformed, "model_types[1]"},
		{"undefined for a nullable field", cFrame("StateRequest", cMap(f("since", []byte{0xf7}))), ErrMalformed, "since"},
		{"break code", stateChange([]byte{0xff}), ErrMalformed, "break"},
		{"two-byte simple value", stateChange([]byte{0xf8, 0x14}), ErrMalformed, "simple value"},
		{"reserved float head", stateChange([]byte{0xfc}), ErrMalformed, "reserved"},
		{"byte string longer than the frame", stateChange([]byte{0x5a, 0xff, 0xff, 0xff, 0xff}), ErrMalformed, "end of data"},
		{"array longer than the frame", stateChange([]byte{0x99, 0x10, 0x00}), ErrMalformed, "end of data"},
		{"deep error path", cFrame("StateBatch", cMap(f("library_id", cUUID(exLibrary)), f("records", cArray(cMap(f("timestamp", cHLC(hlcA(0, 0)))), cMap(f("timestamp", cArray(cUint(1), cUint(0), cBytes(exDevA[:15])))))))), ErrMalformed, "records[1].timestamp: HLC device_id: UUID must be a 16-byte byte string, found 15 bytes"},
		{"unknown variant", cFrame("Future", cMap()), ErrUnknownMessage, `"Future"`},
		{"variant name case", cFrame("hello", ackBody()), ErrUnknownMessage, `"hello"`},
		{"unknown variant, invalid UTF-8 name", cMap(kv{[]byte{0x61, 0xff}, cMap()}), ErrMalformed, ""},
		{"unknown variant, malformed body", cat(cHead(majorMap, 1), cText("Future"), []byte{0xa1, 0x01}), ErrMalformed, ""},
		{"null UUID", cFrame("AckSharedChanges", cMap(f("library_id", cNull()), f("model_type", cNull()))), ErrMalformed, "library_id: UUID must be a 16-byte byte string, found null"},
		{"missing fields", cFrame("Hello", cMap()), ErrInvalid, "library_id"},
		{"case variant of a field is not the field", cFrame("AckSharedChanges", cMap(f("Library_ID", cUUID(exLibrary)), f("from_device", cUUID(exDevA)), f("up_to_hlc", cHLC(hlcB(40, 0))), f("model_type", cText("tag")))), ErrInvalid, "library_id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Decode(tc.in)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Decode(%x):\n got (%v, %v)\nwant error wrapping %v", tc.in, m, err, tc.want)
			}
			if m != nil {
				t.Fatalf("Decode returned message %#v with error %v; want nil", m, err)
			}
			if !strings.Contains(err.Error(), tc.shows) {
				t.Fatalf("Decode error %q does not mention %q", err, tc.shows)
			}
			if tc.want == ErrMalformed && CodeOf(err) != CodeMalformed {
				t.Fatalf("CodeOf(%v) = %v, want malformed", err, CodeOf(err))
			}
		})
	}
}

func TestDecodeErrorNamesVariant(t *testing.T) {
	_, err := Decode(cFrame("Hello", cMap(f("library_id", cBytes([]byte{1, 2})))))
	if err == nil || !strings.HasPrefix(err.Error(), "decoding Hello: protocol: malformed message: ") {
		t.Fatalf("got %v, want an error starting %q", err, "decoding Hello: protocol: malformed message: ")
	}
}

func TestEncodeRejects(t *testing.T) {
	deep := &StateChange{LibraryID: exLibrary, ModelType: "location", RecordUUID: exRec1, DeviceID: exDevA, Timestamp: hlcA(0, 0)}
	deep.Data = nested(MaxNesting - 2)
	if _, err := Encode(deep); err != nil {
		t.Fatalf("Encode of a payload nested to the limit: got %v, want nil", err)
	}
	tooDeep := *deep
	tooDeep.Data = nested(MaxNesting - 1)
	var nilHello *Hello
	for _, tc := range []struct {
		name string
		m    Message
		want error
	}{
		{"nil", nil, ErrInvalid},
		{"typed nil", nilHello, ErrInvalid},
		{"foreign message", foreign{}, ErrUnknownMessage},
		{"invalid", &Hello{}, ErrInvalid},
		{"payload too deep for its place", &tooDeep, ErrInvalid},
		{"payload not CBOR", &SharedChange{LibraryID: exLibrary, HLC: hlcB(1, 0), ModelType: "tag", RecordUUID: exRec1, ChangeType: Insert, Data: cbor.RawMessage{0xff}}, ErrInvalid},
		{"payload with trailing bytes", &SharedChange{LibraryID: exLibrary, HLC: hlcB(1, 0), ModelType: "tag", RecordUUID: exRec1, ChangeType: Insert, Data: cbor.RawMessage{0x01, 0x02}}, ErrInvalid},
		{"payload with a tag", &SharedChange{LibraryID: exLibrary, HLC: hlcB(1, 0), ModelType: "tag", RecordUUID: exRec1, ChangeType: Insert, Data: cbor.RawMessage{0xc1, 0x01}}, ErrInvalid},
		{"payload with invalid UTF-8", &SharedChange{LibraryID: exLibrary, HLC: hlcB(1, 0), ModelType: "tag", RecordUUID: exRec1, ChangeType: Insert, Data: cbor.RawMessage{0x61, 0xff}}, ErrInvalid},
		{"payload of indefinite length", &SharedChange{LibraryID: exLibrary, HLC: hlcB(1, 0), ModelType: "tag", RecordUUID: exRec1, ChangeType: Insert, Data: cbor.RawMessage{0x9f, 0xff}}, ErrInvalid},
		{"payload array too large", &SharedChange{LibraryID: exLibrary, HLC: hlcB(1, 0), ModelType: "tag", RecordUUID: exRec1, ChangeType: Insert, Data: cat(cHead(majorArray, MaxCollectionSize+1), bytes.Repeat([]byte{0}, MaxCollectionSize+1))}, ErrInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := Encode(tc.m)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Encode: got (%x, %v), want error wrapping %v", b, err, tc.want)
			}
		})
	}
}

// foreign is a Message that is not one of this protocol's variants.
type foreign struct{}

func (foreign) Name() string       { return "Foreign" }
func (foreign) Library() uuid.UUID { return exLibrary }
func (foreign) Validate() error    { return nil }
