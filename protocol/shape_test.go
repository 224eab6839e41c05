package protocol

import (
	"fmt"
	"regexp"
	"sort"
	"testing"

	"github.com/fxamacker/cbor/v2"
)

// The wire shape, written out independently of the Go struct tags: this is
// what docs/PROTOCOL.md promises a Rust or Python peer. Field kinds: "uuid"
// (16-byte byte string), "uuid?" (or null), "hlc" ([uint, uint, 16-byte byte
// string]), "hlc?" (or null), "text", "uint", "bool", "data" (any CBOR),
// "[]<kind or struct>" (array), or the name of a struct below.
type wireStruct struct {
	required map[string]string
	optional map[string]string
}

var wireSchema = map[string]wireStruct{
	"StateChange": {
		required: map[string]string{"library_id": "uuid", "model_type": "text", "record_uuid": "uuid", "device_id": "uuid", "timestamp": "hlc"},
		optional: map[string]string{"data": "data", "deleted": "bool", "prev": "hlc"},
	},
	"StateRecord": {
		required: map[string]string{"record_uuid": "uuid", "timestamp": "hlc"},
		optional: map[string]string{"data": "data", "deleted": "bool"},
	},
	"StateBatch": {
		required: map[string]string{"library_id": "uuid", "model_type": "text", "device_id": "uuid", "records": "[]StateRecord"},
		optional: map[string]string{"prev": "hlc"},
	},
	"StateRequest": {
		required: map[string]string{"library_id": "uuid", "model_types": "[]text", "device_id": "uuid?", "since": "hlc?", "limit": "uint"},
		optional: map[string]string{"watermarks": "[]Watermark", "compression": "[]text"},
	},
	"StateResponse": {
		required: map[string]string{"library_id": "uuid", "model_type": "text", "device_id": "uuid", "records": "[]StateRecord", "has_more": "bool", "up_to": "hlc", "complete": "hlc"},
		optional: map[string]string{"snapshot": "bool"},
	},
	"SharedChangeEntry": {
		required: map[string]string{"hlc": "hlc", "model_type": "text", "record_uuid": "uuid", "change_type": "text"},
		optional: map[string]string{"data": "data", "prev": "hlc"},
	},
	"SharedChange": {
		required: map[string]string{"library_id": "uuid", "hlc": "hlc", "model_type": "text", "record_uuid": "uuid", "change_type": "text"},
		optional: map[string]string{"data": "data", "prev": "hlc"},
	},
	"SharedChangeBatch": {
		required: map[string]string{"library_id": "uuid", "entries": "[]SharedChangeEntry"},
	},
	"SharedChangeRequest": {
		required: map[string]string{"library_id": "uuid", "since_hlc": "hlc?", "limit": "uint"},
		optional: map[string]string{"model_types": "[]text", "watermarks": "[]Watermark", "compression": "[]text"},
	},
	"SharedChangeResponse": {
		required: map[string]string{"library_id": "uuid", "entries": "[]SharedChangeEntry", "has_more": "bool", "device_id": "uuid", "model_type": "text", "up_to": "hlc", "complete": "hlc"},
		optional: map[string]string{"snapshot": "bool"},
	},
	"AckSharedChanges": {
		required: map[string]string{"library_id": "uuid", "from_device": "uuid", "up_to_hlc": "hlc", "model_type": "text"},
	},
	"Watermark": {
		required: map[string]string{"device_id": "uuid", "model_type": "text", "hlc": "hlc"},
	},
	"Hello": {
		required: map[string]string{"library_id": "uuid", "device_id": "uuid", "versions": "[]uint", "clock": "hlc", "watermarks": "[]Watermark"},
		optional: map[string]string{"compression": "[]text"},
	},
	"Heartbeat": {
		required: map[string]string{"library_id": "uuid", "device_id": "uuid", "clock": "hlc", "watermarks": "[]Watermark"},
	},
	"Error": {
		required: map[string]string{"library_id": "uuid", "code": "uint", "message": "text"},
		optional: map[string]string{"removed_device": "uuid", "removal": "hlc"},
	},
}

var snakeCase = regexp.MustCompile(`^[a-z][a-z0-9]*(_[a-z0-9]+)*$`)

// shapeChecker checks generically decoded values against wireSchema and
// records which optional fields it saw.
type shapeChecker struct {
	t    *testing.T
	seen map[string]map[string]bool // struct -> field -> seen
}

func (c *shapeChecker) check(path, kind string, v any) {
	c.t.Helper()
	fail := func(format string, args ...any) {
		c.t.Helper()
		c.t.Errorf("%s: want %s, got %s", path, kind, fmt.Sprintf(format, args...))
	}
	switch {
	case kind == "uuid?" && v == nil, kind == "hlc?" && v == nil:
		return
	case kind == "uuid" || kind == "uuid?":
		if b, ok := v.([]byte); !ok || len(b) != 16 {
			fail("%T %v", v, v)
		}
	case kind == "hlc" || kind == "hlc?":
		a, ok := v.([]any)
		if !ok || len(a) != 3 {
			fail("%T %v", v, v)
			return
		}
		if _, ok := a[0].(uint64); !ok {
			fail("timestamp %T", a[0])
		}
		if _, ok := a[1].(uint64); !ok {
			fail("counter %T", a[1])
		}
		c.check(path+"[2]", "uuid", a[2])
	case kind == "text":
		if _, ok := v.(string); !ok {
			fail("%T", v)
		}
	case kind == "uint":
		if _, ok := v.(uint64); !ok {
			fail("%T", v)
		}
	case kind == "bool":
		if _, ok := v.(bool); !ok {
			fail("%T", v)
		}
	case kind == "data":
		if v == nil {
			fail("null")
		}
	case len(kind) > 2 && kind[:2] == "[]":
		a, ok := v.([]any)
		if !ok {
			fail("%T", v)
			return
		}
		for i, e := range a {
			c.check(fmt.Sprintf("%s[%d]", path, i), kind[2:], e)
		}
	default:
		s, ok := wireSchema[kind]
		if !ok {
			c.t.Fatalf("%s: no schema for %q", path, kind)
		}
		m, ok := v.(map[any]any)
		if !ok {
			fail("%T", v)
			return
		}
		if c.seen[kind] == nil {
			c.seen[kind] = map[string]bool{}
		}
		for k, fv := range m {
			name, ok := k.(string)
			if !ok || !snakeCase.MatchString(name) {
				c.t.Errorf("%s: field name %#v is not snake_case text", path, k)
				continue
			}
			fk, req := s.required[name]
			if !req {
				if fk, ok = s.optional[name]; !ok {
					c.t.Errorf("%s: unexpected field %q", path, name)
					continue
				}
			}
			c.seen[kind][name] = true
			c.check(path+"."+name, fk, fv)
		}
		for name := range s.required {
			if _, ok := m[name]; !ok {
				c.t.Errorf("%s: missing required field %q", path, name)
			}
		}
	}
}

// TestWireShape decodes every example frame with a generic CBOR decoder and
// checks the externally tagged form: a map with one text key, the variant
// name, whose value is a map of snake_case fields with UUIDs as 16-byte byte
// strings and HLCs as [uint, uint, 16-byte byte string]. The shape is a
// property of the bytes, not of our Go types. It also checks that the
// examples show every optional field at least once.
func TestWireShape(t *testing.T) {
	c := &shapeChecker{t: t, seen: map[string]map[string]bool{}}
	for _, ex := range examples() {
		b, err := Encode(ex.msg)
		if err != nil {
			t.Fatal(err)
		}
		var v any
		if err := cbor.Unmarshal(b, &v); err != nil {
			t.Fatalf("%s: generic decode: %v", ex.title, err)
		}
		top, ok := v.(map[any]any)
		if !ok || len(top) != 1 {
			t.Fatalf("%s: top level is %T with %d keys, want a map with one key", ex.title, v, len(top))
		}
		for k, body := range top {
			if k != ex.msg.Name() {
				t.Fatalf("%s: variant key %#v, want %q", ex.title, k, ex.msg.Name())
			}
			c.check(ex.msg.Name(), ex.msg.Name(), body)
		}
	}
	for name, s := range wireSchema {
		for field := range s.optional {
			if !c.seen[name][field] {
				t.Errorf("no example shows the optional field %s.%s", name, field)
			}
		}
	}
}

// TestWireSchemaMatchesGo checks that the independent wireSchema above and
// the shapes derived from the Go types name the same fields, so that a field
// added to messages.go is added to the spec's schema too.
func TestWireSchemaMatchesGo(t *testing.T) {
	for _, name := range messageNames {
		got := fieldsOf(variantShapes[name])
		s := wireSchema[name]
		var want []string
		for f := range s.required {
			want = append(want, f)
		}
		for f := range s.optional {
			want = append(want, f)
		}
		sort.Strings(want)
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: Go fields %v, schema fields %v", name, got, want)
		}
	}
}

func fieldsOf(s *shape) []string {
	var out []string
	for f := range s.fields {
		out = append(out, f)
	}
	sort.Strings(out)
	return out
}
