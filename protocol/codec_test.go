package protocol

import (
	"bytes"
	"reflect"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	for _, ex := range examples() {
		t.Run(ex.title, func(t *testing.T) {
			b, err := Encode(ex.msg)
			if err != nil {
				t.Fatalf("Encode: got error %v, want nil", err)
			}
			got, err := Decode(b)
			if err != nil {
				t.Fatalf("Decode(%x): got error %v, want nil", b, err)
			}
			if !reflect.DeepEqual(got, ex.msg) {
				t.Fatalf("Decode(Encode(m)):\n got %#v\nwant %#v", got, ex.msg)
			}
			again, err := Encode(got)
			if err != nil {
				t.Fatalf("second Encode: %v", err)
			}
			if !bytes.Equal(again, b) {
				t.Fatalf("second Encode:\n got %x\nwant %x", again, b)
			}
		})
	}
}
