package localapi

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"strconv"

	"github.com/fxamacker/cbor/v2"

	"github.com/syncnode/syncnode/protocol"
)

// Payloads are opaque CBOR to the node and JSON to the API: JSON in is
// encoded as deterministic CBOR (integers as CBOR integers, other numbers as
// floats), CBOR out is decoded and shown as JSON (byte strings as base64,
// map keys that are not text as their decimal or base64 form, tags as
// {"tag": n, "value": v}).

var (
	encMode = func() cbor.EncMode {
		m, err := cbor.CoreDetEncOptions().EncMode()
		if err != nil {
			panic("localapi: cbor options: " + err.Error())
		}
		return m
	}()
	decMode = func() cbor.DecMode {
		m, err := cbor.DecOptions{
			MaxNestedLevels:  32,
			IntDec:           cbor.IntDecConvertNone,
			DefaultMapType:   nil,
			BigIntDec:        cbor.BigIntDecodeValue,
			DupMapKey:        cbor.DupMapKeyEnforcedAPF,
			UTF8:             cbor.UTF8RejectInvalid,
			MaxArrayElements: 1 << 20,
			MaxMapPairs:      1 << 20,
		}.DecMode()
		if err != nil {
			panic("localapi: cbor options: " + err.Error())
		}
		return m
	}()
)

// jsonToCBOR encodes one JSON value as CBOR. It refuses trailing data and
// nesting deeper than the node accepts.
func jsonToCBOR(data []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("the body is empty: send one JSON value")
		}
		return nil, fmt.Errorf("the body is not valid JSON: %v", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("the body holds more than one JSON value")
	}
	v, err := fromJSON(v, 1)
	if err != nil {
		return nil, err
	}
	b, err := encMode.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encoding the value as CBOR: %v", err)
	}
	return b, nil
}

func fromJSON(v any, depth int) (any, error) {
	if depth > 30 {
		return nil, errors.New("the JSON value is nested deeper than 30 levels")
	}
	switch x := v.(type) {
	case json.Number:
		if i, err := strconv.ParseInt(x.String(), 10, 64); err == nil {
			return i, nil
		}
		if u, err := strconv.ParseUint(x.String(), 10, 64); err == nil {
			return u, nil
		}
		f, err := x.Float64()
		if err != nil || math.IsInf(f, 0) {
			return nil, fmt.Errorf("the number %s does not fit a 64-bit float", x)
		}
		return f, nil
	case []any:
		for i := range x {
			e, err := fromJSON(x[i], depth+1)
			if err != nil {
				return nil, err
			}
			x[i] = e
		}
		return x, nil
	case map[string]any:
		for k, e := range x {
			c, err := fromJSON(e, depth+1)
			if err != nil {
				return nil, err
			}
			x[k] = c
		}
		return x, nil
	}
	return v, nil
}

// cborToJSON turns a stored payload into a JSON value. A payload that is not
// CBOR (another app may store anything) is shown as {"cbor_base64": "..."}.
func cborToJSON(data []byte) json.RawMessage {
	if data == nil {
		return nil
	}
	var v any
	if err := decMode.Unmarshal(data, &v); err == nil {
		if b, err := json.Marshal(toJSON(v)); err == nil {
			return b
		}
	}
	b, _ := json.Marshal(map[string]string{"cbor_base64": base64.StdEncoding.EncodeToString(data)})
	return b
}

func toJSON(v any) any {
	switch x := v.(type) {
	case map[any]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[keyString(k)] = toJSON(e)
		}
		return m
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = toJSON(e)
		}
		return out
	case []byte:
		return base64.StdEncoding.EncodeToString(x)
	case big.Int:
		return json.Number(x.String())
	case *big.Int:
		return json.Number(x.String())
	case cbor.Tag:
		return map[string]any{"tag": x.Number, "value": toJSON(x.Content)}
	case cbor.SimpleValue:
		return map[string]any{"simple": uint8(x)}
	case float32:
		return floatJSON(float64(x))
	case float64:
		return floatJSON(x)
	}
	return v
}

// floatJSON shows NaN and infinities, which JSON lacks, as strings.
func floatJSON(f float64) any {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return strconv.FormatFloat(f, 'g', -1, 64)
	}
	return f
}

func keyString(k any) string {
	switch x := k.(type) {
	case string:
		return x
	case []byte:
		return base64.StdEncoding.EncodeToString(x)
	}
	b, err := json.Marshal(toJSON(k))
	if err != nil {
		return fmt.Sprint(k)
	}
	return string(b)
}

// jsonToPatch converts the body of a PATCH, a JSON object, to a field patch
// (docs/PROTOCOL.md §11.2): each field's value as CBOR, and a null value as
// CBOR undefined, which removes the field.
func jsonToPatch(data []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var obj map[string]any
	if err := dec.Decode(&obj); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("the body is empty: send a JSON object of the fields to set (null removes one)")
		}
		return nil, fmt.Errorf("the body is not a JSON object of fields: %v", err)
	}
	if obj == nil {
		return nil, errors.New("the body is null: send a JSON object of the fields to set (null removes one)")
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("the body holds more than one JSON value")
	}
	patch := make(map[string]cbor.RawMessage, len(obj))
	for name, v := range obj {
		if v == nil {
			patch[name] = protocol.Undefined
			continue
		}
		x, err := fromJSON(v, 2)
		if err != nil {
			return nil, err
		}
		b, err := encMode.Marshal(x)
		if err != nil {
			return nil, fmt.Errorf("encoding field %q as CBOR: %v", name, err)
		}
		patch[name] = b
	}
	return protocol.EncodeFieldPatch(patch)
}
