// Package pairing turns a stranger into a member of a library with one
// invite code. It holds the pieces that need no network: the invite (library,
// a random join token with an expiry, the inviter's peer ID and addresses),
// its text form, the proof a joining device gives that it holds the token,
// and the messages of the pairing stream. The node runs the exchange.
//
// The token never travels after the code is handed over: the joiner proves
// it holds it with an HMAC bound to both authenticated peer IDs and the
// library, over the encrypted libp2p connection, so neither an eavesdropper
// nor a peer the proof was shown to can replay it elsewhere. The library's
// secret goes only to a device that gave a valid proof, over that same
// encrypted stream.
package pairing

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/google/uuid"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// ProtocolID is the libp2p protocol of the pairing stream.
const ProtocolID = "/syncnode/pair/1.0.0"

// CodePrefix starts every invite code.
const CodePrefix = "syncnode1-"

// Limits of invites and pairing messages.
const (
	// TokenSize is the length of a join token in bytes.
	TokenSize = 32
	// MaxCodeLen is the longest invite code accepted, in characters.
	MaxCodeLen = 4096
	// MaxAddrs is the most addresses an invite or a member carries.
	MaxAddrs = 16
	// MaxMembers is the most members a JoinAccept carries.
	MaxMembers = 1024
	// MaxFrameSize is the largest pairing frame, in bytes.
	MaxFrameSize = 256 << 10
	// MaxNameLen is the longest library or device name, in bytes.
	MaxNameLen = 256
)

// Errors of pairing. The node maps them to messages a person understands on
// both sides.
var (
	ErrMalformed = errors.New("pairing: malformed invite code")
	ErrExpired   = errors.New("pairing: invite expired")
	ErrUsed      = errors.New("pairing: invite already used")
	ErrBadProof  = errors.New("pairing: wrong invite token")
	ErrUnknown   = errors.New("pairing: unknown invite")
)

// Invite is what an invite code carries.
type Invite struct {
	_         struct{} `cbor:",toarray"`
	Library   uuid.UUID
	Token     [TokenSize]byte
	Expires   int64 // Unix seconds
	SingleUse bool
	Inviter   string   // peer ID
	Addrs     []string // multiaddrs of the inviter
}

// NewInvite makes an invite with a fresh random token.
func NewInvite(lib uuid.UUID, inviter peer.ID, addrs []ma.Multiaddr, ttl time.Duration, singleUse bool, now time.Time) (Invite, error) {
	inv := Invite{Library: lib, Expires: now.Add(ttl).Unix(), SingleUse: singleUse, Inviter: inviter.String()}
	if _, err := io.ReadFull(rand.Reader, inv.Token[:]); err != nil {
		return Invite{}, fmt.Errorf("pairing: making a token: %w", err)
	}
	for _, a := range addrs {
		if len(inv.Addrs) == MaxAddrs {
			break
		}
		inv.Addrs = append(inv.Addrs, a.String())
	}
	return inv, nil
}

// TokenID identifies a token without revealing it: the inviter stores
// invites under it, and the joiner names it.
func (i Invite) TokenID() [32]byte { return sha256.Sum256(i.Token[:]) }

// ExpiresAt returns the expiry as a time.
func (i Invite) ExpiresAt() time.Time { return time.Unix(i.Expires, 0) }

var encMode, decMode = func() (cbor.EncMode, cbor.DecMode) {
	em, err := cbor.CoreDetEncOptions().EncMode()
	if err != nil {
		panic(err)
	}
	dm, err := cbor.DecOptions{
		MaxNestedLevels:  8,
		MaxArrayElements: MaxMembers * 2,
		MaxMapPairs:      64,
		IndefLength:      cbor.IndefLengthForbidden,
		DupMapKey:        cbor.DupMapKeyEnforcedAPF,
		TagsMd:           cbor.TagsForbidden,
		// Field names are compared exactly, as the spec says.
		FieldNameMatching: cbor.FieldNameMatchingCaseSensitive,
	}.DecMode()
	if err != nil {
		panic(err)
	}
	return em, dm
}()

// Code returns the invite as one copyable string.
func (i Invite) Code() string {
	b, err := encMode.Marshal(i)
	if err != nil {
		panic("pairing: encoding an invite cannot fail: " + err.Error())
	}
	return CodePrefix + base64.RawURLEncoding.EncodeToString(b)
}

// ParseCode reads an invite code, checking its shape (not its expiry: the
// inviter decides that). Surrounding white space is ignored.
func ParseCode(code string) (Invite, error) {
	code = strings.TrimSpace(code)
	if len(code) > MaxCodeLen {
		return Invite{}, fmt.Errorf("%w: %d characters, at most %d", ErrMalformed, len(code), MaxCodeLen)
	}
	if !strings.HasPrefix(code, CodePrefix) {
		return Invite{}, fmt.Errorf("%w: it should start with %q", ErrMalformed, CodePrefix)
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(code[len(CodePrefix):])
	if err != nil {
		return Invite{}, fmt.Errorf("%w: not base64url: %v", ErrMalformed, err)
	}
	var inv Invite
	if err := decMode.Unmarshal(b, &inv); err != nil {
		return Invite{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if re, err := encMode.Marshal(inv); err != nil || !bytes.Equal(re, b) {
		return Invite{}, fmt.Errorf("%w: not in canonical form", ErrMalformed)
	}
	if inv.Library == uuid.Nil {
		return Invite{}, fmt.Errorf("%w: no library", ErrMalformed)
	}
	if _, err := peer.Decode(inv.Inviter); err != nil {
		return Invite{}, fmt.Errorf("%w: inviter %q is not a peer ID", ErrMalformed, inv.Inviter)
	}
	if len(inv.Addrs) > MaxAddrs {
		return Invite{}, fmt.Errorf("%w: %d addresses, at most %d", ErrMalformed, len(inv.Addrs), MaxAddrs)
	}
	for _, a := range inv.Addrs {
		if _, err := ma.NewMultiaddr(a); err != nil {
			return Invite{}, fmt.Errorf("%w: address %q: %v", ErrMalformed, a, err)
		}
	}
	return inv, nil
}

// InviterInfo returns the inviter's peer ID and addresses.
func (i Invite) InviterInfo() (peer.AddrInfo, error) {
	id, err := peer.Decode(i.Inviter)
	if err != nil {
		return peer.AddrInfo{}, fmt.Errorf("%w: inviter: %v", ErrMalformed, err)
	}
	info := peer.AddrInfo{ID: id}
	for _, s := range i.Addrs {
		if a, err := ma.NewMultiaddr(s); err == nil {
			info.Addrs = append(info.Addrs, a)
		}
	}
	return info, nil
}

// Proof is what a joiner sends to show it holds the token: an HMAC-SHA256
// keyed by the token over the library, the joiner's and the inviter's peer
// IDs. Bound to both authenticated peers, it is useless anywhere else.
func Proof(token [TokenSize]byte, lib uuid.UUID, joiner, inviter peer.ID) []byte {
	m := hmac.New(sha256.New, token[:])
	m.Write([]byte("syncnode pairing v1\x00"))
	m.Write(lib[:])
	m.Write([]byte(joiner))
	m.Write([]byte{0})
	m.Write([]byte(inviter))
	return m.Sum(nil)
}

// CheckProof reports whether proof is the right one, in constant time.
func CheckProof(token [TokenSize]byte, lib uuid.UUID, joiner, inviter peer.ID, proof []byte) bool {
	return hmac.Equal(Proof(token, lib, joiner, inviter), proof)
}

// ---- messages of the pairing stream ----

// JoinRequest is the joiner's first and only frame.
type JoinRequest struct {
	LibraryID uuid.UUID `cbor:"library_id"`
	TokenID   []byte    `cbor:"token_id"`
	Proof     []byte    `cbor:"proof"`
	Device    uuid.UUID `cbor:"device_id"`
	Name      string    `cbor:"name"`
}

// MemberInfo describes one member in a JoinAccept.
type MemberInfo struct {
	Device uuid.UUID `cbor:"device_id"`
	PeerID string    `cbor:"peer_id"`
	Name   string    `cbor:"name"`
	Addrs  []string  `cbor:"addrs,omitempty"`
}

// JoinAccept answers a valid JoinRequest with what the joiner needs to
// become a member.
type JoinAccept struct {
	LibraryID uuid.UUID    `cbor:"library_id"`
	Name      string       `cbor:"name"`
	Secret    []byte       `cbor:"secret"`
	Members   []MemberInfo `cbor:"members"`
	AddedBy   uuid.UUID    `cbor:"added_by"`
	// Records is how many records the inviter holds in the library (an
	// estimate of the joiner's backfill, for its progress); 0 if unknown.
	Records uint64 `cbor:"records,omitempty"`
	// CreatedAt is when the library was created, in ms since the Unix
	// epoch (the creator's clock); 0 if unknown (older inviters).
	CreatedAt uint64 `cbor:"created_at,omitempty"`
}

// JoinRefused answers an invalid JoinRequest.
type JoinRefused struct {
	// Reason says why, for people.
	Reason string `cbor:"reason"`
	// Code is one of the Refusal* codes, or a code of a newer inviter.
	Code string `cbor:"code"`
}

// The codes of JoinRefused (docs/PAIRING.md §4). A joiner reads a code it
// does not know like RefusalUnknown.
const (
	// RefusalRateLimited: the joiner's peer failed too often lately; the
	// request was not read.
	RefusalRateLimited = "rate_limited"
	// RefusalMalformed: the first frame is not a valid JoinRequest.
	RefusalMalformed = "malformed"
	// RefusalUnknown: no invite with this token_id for this library, or the
	// inviter cannot add members to it (it does not hold its secret).
	RefusalUnknown = "unknown"
	// RefusalBadToken: the proof is wrong for the authenticated peers.
	RefusalBadToken = "bad_token"
	// RefusalExpired: the invite has expired.
	RefusalExpired = "expired"
	// RefusalUsed: a single-use invite was used already.
	RefusalUsed = "used"
	// RefusalInternal: the inviter failed for a reason of its own (its
	// store); the joiner may try again.
	RefusalInternal = "internal"
)

type envelope struct {
	JoinRequest *JoinRequest `cbor:"JoinRequest,omitempty"`
	JoinAccept  *JoinAccept  `cbor:"JoinAccept,omitempty"`
	JoinRefused *JoinRefused `cbor:"JoinRefused,omitempty"`
}

// Encode encodes one pairing message (a *JoinRequest, *JoinAccept or
// *JoinRefused) as an externally tagged CBOR map.
func Encode(m any) ([]byte, error) {
	var env envelope
	switch m := m.(type) {
	case *JoinRequest:
		env.JoinRequest = m
	case *JoinAccept:
		env.JoinAccept = m
	case *JoinRefused:
		env.JoinRefused = m
	default:
		return nil, fmt.Errorf("pairing: cannot encode %T", m)
	}
	if err := validate(m); err != nil {
		return nil, err
	}
	return encMode.Marshal(env)
}

// Decode decodes and checks one pairing message: a map of exactly one pair,
// the variant's name and its body.
func Decode(b []byte) (any, error) {
	if len(b) > MaxFrameSize {
		return nil, fmt.Errorf("pairing: message of %d bytes, at most %d", len(b), MaxFrameSize)
	}
	var outer map[string]cbor.RawMessage
	if err := decMode.Unmarshal(b, &outer); err != nil {
		return nil, fmt.Errorf("pairing: malformed message: %w", err)
	}
	if len(outer) != 1 {
		return nil, fmt.Errorf("pairing: malformed message: a map of %d pairs, want one", len(outer))
	}
	var env envelope
	if err := decMode.Unmarshal(b, &env); err != nil {
		return nil, fmt.Errorf("pairing: malformed message: %w", err)
	}
	var m any
	n := 0
	if env.JoinRequest != nil {
		m, n = env.JoinRequest, n+1
	}
	if env.JoinAccept != nil {
		m, n = env.JoinAccept, n+1
	}
	if env.JoinRefused != nil {
		m, n = env.JoinRefused, n+1
	}
	if n != 1 {
		return nil, errors.New("pairing: malformed message: want exactly one of JoinRequest, JoinAccept, JoinRefused")
	}
	if err := validate(m); err != nil {
		return nil, err
	}
	return m, nil
}

func validate(m any) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("pairing: invalid message: "+format, args...)
	}
	switch m := m.(type) {
	case *JoinRequest:
		switch {
		case m.LibraryID == uuid.Nil:
			return bad("JoinRequest without a library")
		case m.Device == uuid.Nil:
			return bad("JoinRequest without a device")
		case len(m.TokenID) != sha256.Size:
			return bad("JoinRequest token_id of %d bytes, want %d", len(m.TokenID), sha256.Size)
		case len(m.Proof) != sha256.Size:
			return bad("JoinRequest proof of %d bytes, want %d", len(m.Proof), sha256.Size)
		case len(m.Name) > MaxNameLen:
			return bad("device name of %d bytes, at most %d", len(m.Name), MaxNameLen)
		}
	case *JoinAccept:
		switch {
		case m.LibraryID == uuid.Nil:
			return bad("JoinAccept without a library")
		case len(m.Secret) == 0 || len(m.Secret) > 1024:
			return bad("JoinAccept secret of %d bytes", len(m.Secret))
		case len(m.Members) == 0 || len(m.Members) > MaxMembers:
			return bad("JoinAccept with %d members", len(m.Members))
		case len(m.Name) > MaxNameLen:
			return bad("library name of %d bytes, at most %d", len(m.Name), MaxNameLen)
		}
		for _, mi := range m.Members {
			if mi.Device == uuid.Nil {
				return bad("member without a device")
			}
			if _, err := peer.Decode(mi.PeerID); err != nil {
				return bad("member %s: peer ID %q: %v", mi.Device, mi.PeerID, err)
			}
			if len(mi.Addrs) > MaxAddrs || len(mi.Name) > MaxNameLen {
				return bad("member %s: too many addresses or too long a name", mi.Device)
			}
			for _, a := range mi.Addrs {
				if _, err := ma.NewMultiaddr(a); err != nil {
					return bad("member %s: address %q: %v", mi.Device, a, err)
				}
			}
		}
	case *JoinRefused:
		if len(m.Reason) > 1024 || len(m.Code) > 64 {
			return bad("JoinRefused too long")
		}
	}
	return nil
}

// Rendezvous returns the name under which a library's members advertise
// and look for each other in the DHT: derived from the library's secret
// (HMAC-SHA256 of a fixed label), so nobody without the secret can find, or
// even recognise, a library's members there.
func Rendezvous(secret []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("syncnode rendezvous v1"))
	return "/syncnode/rv/" + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}
