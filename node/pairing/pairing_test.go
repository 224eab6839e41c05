package pairing

import (
	"crypto/rand"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

func newPeer(t testing.TB) peer.ID {
	t.Helper()
	_, pub, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestInviteCodeRoundTrip(t *testing.T) {
	inviter := newPeer(t)
	addr := ma.StringCast("/ip4/127.0.0.1/tcp/4001")
	now := time.Unix(1_800_000_000, 0)
	inv, err := NewInvite(uuid.New(), inviter, []ma.Multiaddr{addr}, time.Hour, true, now)
	if err != nil {
		t.Fatal(err)
	}
	code := inv.Code()
	if !strings.HasPrefix(code, CodePrefix) || strings.ContainsAny(code, " \n+/=") {
		t.Fatalf("code %q is not one copyable string", code)
	}
	got, err := ParseCode("  " + code + "\n")
	if err != nil {
		t.Fatal(err)
	}
	if got.Library != inv.Library || got.Token != inv.Token || got.Expires != now.Add(time.Hour).Unix() ||
		!got.SingleUse || got.Inviter != inviter.String() || len(got.Addrs) != 1 {
		t.Fatalf("round trip: got %+v, want %+v", got, inv)
	}
	info, err := got.InviterInfo()
	if err != nil || info.ID != inviter || !info.Addrs[0].Equal(addr) {
		t.Fatalf("inviter info %+v, %v", info, err)
	}
}

func TestParseCodeRefusesGarbage(t *testing.T) {
	inv, _ := NewInvite(uuid.New(), newPeer(t), nil, time.Hour, false, time.Now())
	good := inv.Code()
	for _, tc := range []struct{ name, code string }{
		{"empty", ""},
		{"wrong prefix", "syncnode2-" + good[len(CodePrefix):]},
		{"not base64", CodePrefix + "!!!"},
		{"truncated", good[:len(good)-5]},
		{"too long", CodePrefix + strings.Repeat("A", MaxCodeLen)},
		{"not CBOR", CodePrefix + "AAAA"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ParseCode(tc.code); !errors.Is(err, ErrMalformed) {
				t.Fatalf("ParseCode(%q) = %v, want ErrMalformed", tc.code, err)
			}
		})
	}
}

func TestProofBindsPeersAndLibrary(t *testing.T) {
	var token [TokenSize]byte
	rand.Read(token[:])
	lib, joiner, inviter, other := uuid.New(), newPeer(t), newPeer(t), newPeer(t)
	p := Proof(token, lib, joiner, inviter)
	if !CheckProof(token, lib, joiner, inviter, p) {
		t.Fatal("a good proof was refused")
	}
	var wrong [TokenSize]byte
	rand.Read(wrong[:])
	for name, ok := range map[string]bool{
		"wrong token":   CheckProof(wrong, lib, joiner, inviter, p),
		"other joiner":  CheckProof(token, lib, other, inviter, p),
		"other inviter": CheckProof(token, lib, joiner, other, p),
		"other library": CheckProof(token, uuid.New(), joiner, inviter, p),
	} {
		if ok {
			t.Errorf("%s: proof accepted", name)
		}
	}
}

func TestMessagesRoundTripAndValidation(t *testing.T) {
	inv, _ := NewInvite(uuid.New(), newPeer(t), nil, time.Hour, false, time.Now())
	id := inv.TokenID()
	req := &JoinRequest{LibraryID: inv.Library, TokenID: id[:], Proof: Proof(inv.Token, inv.Library, newPeer(t), newPeer(t)), Device: uuid.New(), Name: "phone"}
	acc := &JoinAccept{LibraryID: inv.Library, Name: "photos", Secret: []byte("0123456789abcdef"), AddedBy: uuid.New(),
		Members: []MemberInfo{{Device: uuid.New(), PeerID: newPeer(t).String(), Name: "laptop", Addrs: []string{"/ip4/127.0.0.1/tcp/1"}}}}
	ref := &JoinRefused{Code: "expired", Reason: "the invite expired at 12:00"}
	for _, m := range []any{req, acc, ref} {
		b, err := Encode(m)
		if err != nil {
			t.Fatalf("encoding %T: %v", m, err)
		}
		got, err := Decode(b)
		if err != nil {
			t.Fatalf("decoding %T: %v", m, err)
		}
		re, _ := Encode(got)
		if string(re) != string(b) {
			t.Fatalf("%T does not round-trip", m)
		}
	}
	bad := *req
	bad.Proof = []byte{1, 2, 3}
	if _, err := Encode(&bad); err == nil {
		t.Fatal("a short proof was encoded")
	}
	if _, err := Decode([]byte{0xa0}); err == nil {
		t.Fatal("an empty envelope decoded")
	}
}

func FuzzParseCode(f *testing.F) {
	inv, _ := NewInvite(uuid.New(), newPeer(f), []ma.Multiaddr{ma.StringCast("/ip4/127.0.0.1/tcp/1")}, time.Hour, true, time.Now())
	f.Add(inv.Code())
	f.Add(CodePrefix)
	f.Add(CodePrefix + "gA")
	f.Fuzz(func(t *testing.T, code string) {
		inv, err := ParseCode(code)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error not ErrMalformed: %v", err)
			}
			return
		}
		if again, err := ParseCode(inv.Code()); err != nil || again.Token != inv.Token {
			t.Fatalf("a parsed code does not round-trip: %v", err)
		}
	})
}

func FuzzDecode(f *testing.F) {
	inv, _ := NewInvite(uuid.New(), newPeer(f), nil, time.Hour, false, time.Now())
	id := inv.TokenID()
	for _, m := range []any{
		&JoinRequest{LibraryID: inv.Library, TokenID: id[:], Proof: id[:], Device: uuid.New()},
		&JoinAccept{LibraryID: inv.Library, Secret: []byte("s"), AddedBy: uuid.New(), Members: []MemberInfo{{Device: uuid.New(), PeerID: inv.Inviter}}},
		&JoinRefused{Code: "used"},
	} {
		b, _ := Encode(m)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Decode(b)
		if err != nil {
			return
		}
		re, err := Encode(m)
		if err != nil {
			t.Fatalf("a decoded message does not encode: %v", err)
		}
		if _, err := Decode(re); err != nil {
			t.Fatalf("re-encoded message does not decode: %v", err)
		}
	})
}

func TestRendezvousNeedsTheSecret(t *testing.T) {
	a, b := Rendezvous([]byte("secret one")), Rendezvous([]byte("secret two"))
	if a == b || a != Rendezvous([]byte("secret one")) || !strings.HasPrefix(a, "/syncnode/rv/") {
		t.Fatalf("rendezvous names %q and %q", a, b)
	}
}

// A code is canonical: the base64url's unused bits are zero, so one invite
// has one code (PAIRING.md §2).
func TestParseCodeRefusesNonCanonicalBase64(t *testing.T) {
	code := exInvite().Code()
	raw := code[len(CodePrefix):]
	if len(raw)%4 == 0 {
		t.Fatalf("the example code has no unused bits (%d characters); pick another", len(raw))
	}
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	last := strings.IndexByte(alphabet, raw[len(raw)-1])
	bent := CodePrefix + raw[:len(raw)-1] + string(alphabet[last|1])
	if bent == code {
		t.Fatal("the last character already has its low bit set")
	}
	if _, err := ParseCode(bent); !errors.Is(err, ErrMalformed) {
		t.Fatalf("ParseCode of a code with non-zero unused bits = %v, want ErrMalformed", err)
	}
}

// A pairing message is a map of exactly one pair.
func TestDecodeRefusesTwoPairs(t *testing.T) {
	req, _, ref, _ := pairingExamples()
	a, _ := Encode(req)
	b, _ := Encode(ref)
	// {JoinRequest: …, JoinRefused: …}: one map of two pairs.
	two := append([]byte{0xa2}, append(a[1:], b[1:]...)...)
	if m, err := Decode(two); err == nil {
		t.Fatalf("Decode of a map of two variants = %T, want an error", m)
	}
	withExtra := append([]byte{0xa2}, append(a[1:], 0x61, 'x', 0x01)...)
	if m, err := Decode(withExtra); err == nil {
		t.Fatalf("Decode of a variant and an unknown pair = %T, want an error", m)
	}
}
