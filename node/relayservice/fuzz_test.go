package relayservice

import (
	"bytes"
	"testing"

	pbv2 "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/pb"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/util"
)

// FuzzReadHop feeds the hop dispatcher's reader arbitrary bytes: it never
// panics, never reads past the first message, and what it accepts is a
// message that decodes again from the bytes it returns.
func FuzzReadHop(f *testing.F) {
	var buf bytes.Buffer
	w := util.NewDelimitedWriter(&buf)
	_ = w.WriteMsg(&pbv2.HopMessage{Type: pbv2.HopMessage_RESERVE.Enum()})
	f.Add(append(bytes.Clone(buf.Bytes()), 0xde, 0xad))
	buf.Reset()
	_ = w.WriteMsg(&pbv2.HopMessage{Type: pbv2.HopMessage_CONNECT.Enum(), Peer: &pbv2.Peer{Id: []byte("not a peer id")}})
	f.Add(bytes.Clone(buf.Bytes()))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Add([]byte{0x80, 0x40})
	f.Fuzz(func(t *testing.T, b []byte) {
		r := bytes.NewReader(b)
		raw, msg, err := readHop(r)
		if err != nil {
			return
		}
		if len(raw) > maxHopMessage+10 {
			t.Fatalf("accepted %d bytes, more than a message may have", len(raw))
		}
		if consumed := len(b) - r.Len(); consumed != len(raw) {
			t.Fatalf("read %d bytes, returned %d: it read past the message", consumed, len(raw))
		}
		if !bytes.Equal(raw, b[:len(raw)]) {
			t.Fatal("the returned bytes are not the bytes read")
		}
		again, msg2, err := readHop(bytes.NewReader(raw))
		if err != nil || !bytes.Equal(again, raw) || msg2.GetType() != msg.GetType() {
			t.Fatalf("the bytes returned do not read again as the same message: %v", err)
		}
	})
}
