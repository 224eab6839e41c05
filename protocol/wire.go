package protocol

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"unicode/utf8"

	"github.com/fxamacker/cbor/v2"
	"github.com/google/uuid"
)

// The wire check. Before a frame is decoded into Go values, and after one is
// encoded, it is walked once against the shape of its variant, derived from
// the Go types by reflection. The walk enforces what the CBOR library's
// decoder does not, or not strictly enough for a wire protocol:
//
//   - every text string is valid UTF-8, payloads included;
//   - a UUID is a byte string of exactly 16 bytes (the library would also
//     fill a [16]byte from a CBOR array of up to 16 integers);
//   - an HLC is an array of exactly [uint, uint, 16-byte byte string];
//   - null appears only where the field is nullable (a pointer field, and
//     data), never for a text, number, bool, list or struct;
//   - field names of a body and of a nested struct are text strings;
//   - no tags, no indefinite lengths, no reserved encodings, nesting within
//     MaxNesting over the whole frame, collections within MaxCollectionSize,
//     and nothing after the frame's one data item.
//
// Duplicate keys are left to the library's decoder (DupMapKeyEnforcedAPF),
// which sees every map of a body; a payload is opaque and is not checked for
// them.

// kind is the wire type of a field.
type kind uint8

const (
	kindAny      kind = iota // an unknown field: any valid data item
	kindData                 // a payload: any valid data item, null meaning absent
	kindUUID                 // 16-byte byte string
	kindUUIDNull             // 16-byte byte string or null
	kindHLC                  // [uint, uint32, 16-byte byte string]
	kindHLCNull              // an HLC or null
	kindText                 // text string
	kindUint                 // unsigned integer up to shape.max
	kindBool                 // true or false
	kindList                 // array of shape.elem
	kindStruct               // map of text keys; known ones have shape.fields
)

// shape describes the expected wire form of a value.
type shape struct {
	kind   kind
	max    uint64            // kindUint
	elem   *shape            // kindList
	fields map[string]*shape // kindStruct
	// list holds fields again, for lookup by a linear scan, which beats a
	// map lookup for the handful of fields a struct has.
	list []namedShape
}

type namedShape struct {
	name  string
	shape *shape
}

// field returns the shape of the field named key, or nil.
func (s *shape) field(key []byte) *shape {
	for i := range s.list {
		if s.list[i].name == string(key) {
			return s.list[i].shape
		}
	}
	return nil
}

var (
	anyShape = &shape{kind: kindAny}
	// variantShapes maps each variant name to the shape of its body.
	variantShapes = buildVariantShapes()
)

// variantNames lists every message variant.
var variantNames = [...]string{
	"StateChange", "StateBatch", "StateRequest", "StateResponse",
	"SharedChange", "SharedChangeBatch", "SharedChangeRequest", "SharedChangeResponse",
	"AckSharedChanges", "Hello", "Heartbeat", "Error",
}

func buildVariantShapes() map[string]*shape {
	cache := map[reflect.Type]*shape{}
	out := make(map[string]*shape, len(variantNames))
	for _, name := range variantNames {
		m := newMessage([]byte(name))
		if m == nil || m.Name() != name {
			panic("protocol: no message type for variant " + name)
		}
		out[name] = shapeOf(reflect.TypeOf(m).Elem(), cache)
	}
	return out
}

var (
	typeUUID = reflect.TypeFor[uuid.UUID]()
	typeHLC  = reflect.TypeFor[HLC]()
	typeRaw  = reflect.TypeFor[cbor.RawMessage]()
)

// shapeOf derives the wire shape of Go type t. It panics on a type the
// protocol does not use: adding one to messages.go means teaching it here.
func shapeOf(t reflect.Type, cache map[reflect.Type]*shape) *shape {
	if s, ok := cache[t]; ok {
		return s
	}
	var s *shape
	switch {
	case t == typeUUID:
		s = &shape{kind: kindUUID}
	case t == typeHLC:
		s = &shape{kind: kindHLC}
	case t == typeRaw:
		s = &shape{kind: kindData}
	case t.Kind() == reflect.Pointer && t.Elem() == typeUUID:
		s = &shape{kind: kindUUIDNull}
	case t.Kind() == reflect.Pointer && t.Elem() == typeHLC:
		s = &shape{kind: kindHLCNull}
	case t.Kind() == reflect.String:
		s = &shape{kind: kindText}
	case t.Kind() == reflect.Bool:
		s = &shape{kind: kindBool}
	case t.Kind() >= reflect.Uint8 && t.Kind() <= reflect.Uint64:
		s = &shape{kind: kindUint, max: math.MaxUint64 >> (64 - t.Bits())}
	case t.Kind() == reflect.Slice:
		s = &shape{kind: kindList, elem: shapeOf(t.Elem(), cache)}
	case t.Kind() == reflect.Struct:
		s = &shape{kind: kindStruct, fields: map[string]*shape{}}
		for i := range t.NumField() {
			sf := t.Field(i)
			if !sf.IsExported() {
				continue
			}
			name, _, _ := strings.Cut(sf.Tag.Get("cbor"), ",")
			if name == "" || name == "-" {
				panic(fmt.Sprintf("protocol: field %s.%s has no CBOR name", t, sf.Name))
			}
			s.fields[name] = shapeOf(sf.Type, cache)
			s.list = append(s.list, namedShape{name, s.fields[name]})
		}
	default:
		panic(fmt.Sprintf("protocol: no wire shape for Go type %s", t))
	}
	cache[t] = s
	return s
}

// checkFrame walks a whole frame body: the envelope, then the body against its
// variant's shape (or as any value for an unknown variant). It returns the
// variant name and the body. Errors are plain; the caller wraps them.
func checkFrame(b []byte) (name string, body []byte, known bool, err error) {
	nameB, body, err := splitEnvelope(b)
	if err != nil {
		return "", nil, false, err
	}
	s, known := variantShapes[string(nameB)]
	if !known {
		s = anyShape
	}
	w := walker{b: body}
	if err := w.value(s, 2); err != nil {
		return string(nameB), nil, known, err
	}
	if w.off != len(body) {
		return string(nameB), nil, known, fmt.Errorf("%d extraneous bytes after the message", len(body)-w.off)
	}
	if !known && !utf8.Valid(nameB) {
		return "", nil, false, errors.New("variant name is not valid UTF-8")
	}
	return string(nameB), body, known, nil
}

// splitEnvelope reads the head of the outer one-key map and its text key, and
// returns the key and the rest of b, which must start with a map.
func splitEnvelope(b []byte) (name, body []byte, err error) {
	w := walker{b: b}
	major, n, err := w.head()
	if err != nil {
		return nil, nil, err
	}
	if major != majorMap || n != 1 {
		return nil, nil, fmt.Errorf("top-level value must be a map with one key, found %s", describeHead(major, n))
	}
	major, n, err = w.head()
	if err != nil {
		return nil, nil, err
	}
	if major != majorText {
		return nil, nil, fmt.Errorf("variant name must be a text string, found %s", describeHead(major, n))
	}
	if n > uint64(len(b)-w.off) {
		return nil, nil, errors.New("truncated variant name")
	}
	name, body = b[w.off:w.off+int(n)], b[w.off+int(n):]
	if len(body) == 0 {
		return nil, nil, errors.New("missing message body")
	}
	if major, n, _, err := readHead(body, 0); err != nil {
		return nil, nil, err
	} else if major != majorMap {
		return nil, nil, fmt.Errorf("message body must be a map, found %s", describeHead(major, n))
	}
	return name, body, nil
}

// CBOR major types.
const (
	majorUint   = 0
	majorNeg    = 1
	majorBytes  = 2
	majorText   = 3
	majorArray  = 4
	majorMap    = 5
	majorTag    = 6
	majorSimple = 7
)

var errUnexpectedEnd = errors.New("unexpected end of data")

// readHead reads the CBOR data item head at b[off:]: its major type and
// argument, and the offset after the head. For major type 7 the argument is
// the simple value or the float's bits. Indefinite lengths, break codes and
// reserved additional information are errors.
func readHead(b []byte, off int) (major byte, arg uint64, next int, err error) {
	if off >= len(b) {
		return 0, 0, off, errUnexpectedEnd
	}
	major, ai := b[off]>>5, b[off]&0x1f
	off++
	var size int
	switch {
	case ai < 24:
		return major, uint64(ai), off, nil
	case ai == 24:
		size = 1
	case ai == 25:
		size = 2
	case ai == 26:
		size = 4
	case ai == 27:
		size = 8
	case ai == 31 && major >= majorBytes && major <= majorMap:
		return 0, 0, off, errors.New("indefinite length")
	case ai == 31 && major == majorSimple:
		return 0, 0, off, errors.New("unexpected break code")
	default:
		return 0, 0, off, fmt.Errorf("reserved additional information %d", ai)
	}
	if len(b)-off < size {
		return 0, 0, off, errUnexpectedEnd
	}
	for _, c := range b[off : off+size] {
		arg = arg<<8 | uint64(c)
	}
	if major == majorSimple && size == 1 && arg < 32 {
		// RFC 8949 §3.3: a simple value below 32 in the two-byte form
		// is not well-formed.
		return 0, 0, off, fmt.Errorf("simple value %d in two-byte form", arg)
	}
	return major, arg, off + size, nil
}

func describeHead(major byte, arg uint64) string {
	switch major {
	case majorUint:
		return "an unsigned integer"
	case majorNeg:
		return "a negative integer"
	case majorBytes:
		return "a byte string"
	case majorText:
		return "a text string"
	case majorArray:
		return fmt.Sprintf("an array of %d elements", arg)
	case majorMap:
		return fmt.Sprintf("a map with %d pairs", arg)
	case majorTag:
		return "a tag"
	}
	switch arg {
	case 20, 21:
		return "a bool"
	case 22:
		return "null"
	case 23:
		return "undefined"
	}
	return "a float or simple value"
}

// walker walks CBOR data items of b from off.
type walker struct {
	b   []byte
	off int
}

func (w *walker) head() (major byte, arg uint64, err error) {
	major, arg, w.off, err = readHead(w.b, w.off)
	return major, arg, err
}

// payload returns n bytes of a byte or text string.
func (w *walker) payload(n uint64) ([]byte, error) {
	if n > uint64(len(w.b)-w.off) {
		return nil, errUnexpectedEnd
	}
	p := w.b[w.off : w.off+int(n)]
	w.off += int(n)
	return p, nil
}

// count checks a collection's size: within MaxCollectionSize, and not more
// items than bytes left (every item takes at least one byte).
func (w *walker) count(major byte, n uint64) (int, error) {
	if n > MaxCollectionSize {
		if major == majorMap {
			return 0, fmt.Errorf("map of %d pairs, limit %d", n, MaxCollectionSize)
		}
		return 0, fmt.Errorf("array of %d elements, limit %d", n, MaxCollectionSize)
	}
	if n > uint64(len(w.b)-w.off) {
		return 0, errUnexpectedEnd
	}
	return int(n), nil
}

// value walks one data item that must have shape s; level is its nesting
// level in the frame (the outer map is 1), counted for arrays and maps.
func (w *walker) value(s *shape, level int) error {
	start := w.off
	major, arg, err := w.head()
	if err != nil {
		return err
	}
	isNull := major == majorSimple && arg == 22
	switch s.kind {
	case kindAny, kindData:
		w.off = start
		return w.any(level)
	case kindUUID, kindUUIDNull:
		if isNull && s.kind == kindUUIDNull {
			return nil
		}
		if major != majorBytes {
			return fmt.Errorf("UUID must be a 16-byte byte string, found %s", describeHead(major, arg))
		}
		if arg != 16 {
			return fmt.Errorf("UUID must be a 16-byte byte string, found %d bytes", arg)
		}
		_, err := w.payload(arg)
		return err
	case kindHLC, kindHLCNull:
		if isNull && s.kind == kindHLCNull {
			return nil
		}
		if major != majorArray || arg != 3 {
			return fmt.Errorf("HLC must be an array [timestamp, counter, device_id], found %s", describeHead(major, arg))
		}
		if level > MaxNesting {
			return fmt.Errorf("nested deeper than %d levels", MaxNesting)
		}
		if err := w.value(hlcTimestampShape, level+1); err != nil {
			return fmt.Errorf("HLC timestamp: %w", err)
		}
		if err := w.value(hlcCounterShape, level+1); err != nil {
			return fmt.Errorf("HLC counter: %w", err)
		}
		if err := w.value(hlcDeviceShape, level+1); err != nil {
			return fmt.Errorf("HLC device_id: %w", err)
		}
		return nil
	case kindText:
		if major != majorText {
			return fmt.Errorf("want a text string, found %s", describeHead(major, arg))
		}
		p, err := w.payload(arg)
		if err != nil {
			return err
		}
		if !utf8.Valid(p) {
			return errors.New("text string is not valid UTF-8")
		}
		return nil
	case kindUint:
		if major != majorUint {
			return fmt.Errorf("want an unsigned integer, found %s", describeHead(major, arg))
		}
		if arg > s.max {
			return fmt.Errorf("%d overflows the limit %d", arg, s.max)
		}
		return nil
	case kindBool:
		if major != majorSimple || (arg != 20 && arg != 21) {
			return fmt.Errorf("want a bool, found %s", describeHead(major, arg))
		}
		return nil
	case kindList:
		if major != majorArray {
			return fmt.Errorf("want an array, found %s", describeHead(major, arg))
		}
		if level > MaxNesting {
			return fmt.Errorf("nested deeper than %d levels", MaxNesting)
		}
		n, err := w.count(major, arg)
		if err != nil {
			return err
		}
		for i := range n {
			if err := w.value(s.elem, level+1); err != nil {
				return atPath(fmt.Sprintf("[%d]", i), err)
			}
		}
		return nil
	case kindStruct:
		if major != majorMap {
			return fmt.Errorf("want a map, found %s", describeHead(major, arg))
		}
		if level > MaxNesting {
			return fmt.Errorf("nested deeper than %d levels", MaxNesting)
		}
		n, err := w.count(major, arg)
		if err != nil {
			return err
		}
		for range n {
			km, kn, err := w.head()
			if err != nil {
				return err
			}
			if km != majorText {
				return fmt.Errorf("field name must be a text string, found %s", describeHead(km, kn))
			}
			key, err := w.payload(kn)
			if err != nil {
				return err
			}
			if !utf8.Valid(key) {
				return errors.New("field name is not valid UTF-8")
			}
			fs := s.field(key)
			if fs == nil {
				fs = anyShape
			}
			if err := w.value(fs, level+1); err != nil {
				return atPath(string(key), err)
			}
		}
		return nil
	}
	panic("protocol: unknown wire kind")
}

var (
	hlcTimestampShape = &shape{kind: kindUint, max: math.MaxUint64}
	hlcCounterShape   = &shape{kind: kindUint, max: math.MaxUint32}
	hlcDeviceShape    = &shape{kind: kindUUID}
)

// any walks one data item of any type; level is its nesting level.
func (w *walker) any(level int) error {
	major, arg, err := w.head()
	if err != nil {
		return err
	}
	switch major {
	case majorUint, majorNeg, majorSimple:
		return nil
	case majorBytes:
		_, err := w.payload(arg)
		return err
	case majorText:
		p, err := w.payload(arg)
		if err != nil {
			return err
		}
		if !utf8.Valid(p) {
			return errors.New("text string is not valid UTF-8")
		}
		return nil
	case majorArray, majorMap:
		if level > MaxNesting {
			return fmt.Errorf("nested deeper than %d levels", MaxNesting)
		}
		n, err := w.count(major, arg)
		if err != nil {
			return err
		}
		if major == majorMap {
			n *= 2
		}
		for range n {
			if err := w.any(level + 1); err != nil {
				return err
			}
		}
		return nil
	}
	return errors.New("tags are not allowed")
}

// pathError says where in a body the walk failed, as "records[3].timestamp".
type pathError struct {
	path string
	err  error
}

func (e *pathError) Error() string { return e.path + ": " + e.err.Error() }
func (e *pathError) Unwrap() error { return e.err }

// atPath prefixes err's path with elem, a field name or an index "[i]".
func atPath(elem string, err error) error {
	pe, ok := err.(*pathError)
	if !ok {
		return &pathError{path: elem, err: err}
	}
	if strings.HasPrefix(pe.path, "[") {
		pe.path = elem + pe.path
	} else {
		pe.path = elem + "." + pe.path
	}
	return pe
}
