package localapi

import (
	"encoding/json"
	"testing"
)

// Any body either is refused with an error or becomes CBOR that reads back
// as JSON: never a panic, never a payload the node cannot show.
func FuzzJSONToCBOR(f *testing.F) {
	for _, s := range []string{`{"name":"holiday","n":1}`, `[1,2.5,-3,"x",null,true]`, `18446744073709551615`,
		`1e400`, `{"a":{"b":{"c":[[[[]]]]}}}`, `"\ud800"`, `{} {}`, ``, `{"a":1,"a":2}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		b, err := jsonToCBOR(body)
		if err != nil {
			return
		}
		var v any
		if err := decMode.Unmarshal(b, &v); err != nil {
			t.Fatalf("accepted %q but made CBOR that does not decode: %v", body, err)
		}
		out := cborToJSON(b)
		if !json.Valid(out) {
			t.Fatalf("CBOR of %q shows as invalid JSON %q", body, out)
		}
	})
}

// Any stored payload, CBOR or not, shows as valid JSON.
func FuzzCBORToJSON(f *testing.F) {
	for _, h := range [][]byte{{0xa1, 0x61, 0x61, 0x01}, {0xc1, 0x1a, 0, 0, 0, 1}, {0xf9, 0x7e, 0x00}, {0x42, 1, 2},
		{0xa1, 0x01, 0x02}, {0xc2, 0x49, 1, 0, 0, 0, 0, 0, 0, 0, 0}, {0xff}} {
		f.Add(h)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		if out := cborToJSON(data); !json.Valid(out) {
			t.Fatalf("payload %x shows as invalid JSON %q", data, out)
		}
	})
}
