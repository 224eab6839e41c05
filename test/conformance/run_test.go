package conformance

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/google/uuid"
	"github.com/klauspost/compress/s2"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	p2pproto "github.com/libp2p/go-libp2p/core/protocol"

	"github.com/syncnode/syncnode/node"
	"github.com/syncnode/syncnode/node/engine"
	"github.com/syncnode/syncnode/protocol"
)

// stepTimeout bounds each read of the tester.
const stepTimeout = 10 * time.Second

// TestConformance runs every vector of docs/conformance/vectors.json, in
// order, against one real node on a libp2p host over TCP on 127.0.0.1. It
// reads nothing but the JSON: what it does is what another implementation's
// tester does (docs/conformance/README.md).
func TestConformance(t *testing.T) {
	raw, err := os.ReadFile(vectorsPath)
	if err != nil {
		t.Fatalf("reading the vectors: %v", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.UseNumber()
	var f File
	if err := dec.Decode(&f); err != nil {
		t.Fatalf("decoding %s: %v", vectorsPath, err)
	}
	if f.Protocol != protocol.ProtocolID {
		t.Fatalf("the vectors are for %s, the node speaks %s", f.Protocol, protocol.ProtocolID)
	}

	// The node under test: the library with the member peers, no record.
	cfg := node.DefaultLocalConfig()
	cfg.DataDir = t.TempDir()
	cfg.Registry = conformanceRegistry(t)
	logger := slog.New(slog.DiscardHandler)
	if os.Getenv("SYNCNODE_TEST_LOG") != "" {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	nd, err := node.New(cfg, node.WithLogger(logger))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := nd.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nd.Close() })
	lib := uuid.MustParse(f.Setup.Library)
	var members []node.Member
	hosts := map[string]host.Host{}
	for name, p := range f.Setup.Peers {
		key, id := peerKey(t, p)
		if id.String() != p.PeerID {
			t.Fatalf("peer %s: its seed gives peer ID %s, the file says %s", name, id, p.PeerID)
		}
		if p.Member {
			members = append(members, node.Member{Device: uuid.MustParse(p.Device), Peer: id, Name: name})
		}
		if p.Dials {
			h, err := libp2p.New(libp2p.Identity(key), libp2p.NoListenAddrs)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = h.Close() })
			hosts[name] = h
		}
	}
	if _, err := nd.AddLibrary(ctx, lib, "conformance", members...); err != nil {
		t.Fatal(err)
	}
	for name, h := range hosts {
		if err := h.Connect(ctx, nd.AddrInfo()); err != nil {
			t.Fatalf("peer %s connecting to the node: %v", name, err)
		}
	}

	for _, v := range f.Vectors {
		t.Run(v.Name, func(t *testing.T) {
			h := hosts[v.As]
			if h == nil {
				t.Fatalf("the vector speaks as %q, a peer the file does not let dial", v.As)
			}
			runVector(t, h, nd.Host().ID(), f.Setup.MaxFrameSize, v)
		})
	}
}

// peerKey returns the libp2p key of a peer of the file.
func peerKey(t *testing.T, p Peer) (crypto.PrivKey, peer.ID) {
	t.Helper()
	s, err := hex.DecodeString(p.Seed)
	if err != nil || len(s) != ed25519.SeedSize {
		t.Fatalf("bad seed %q: %v", p.Seed, err)
	}
	return keyOf(s)
}

// testStream is one stream of a vector.
type testStream struct {
	s      network.Stream
	br     *bufio.Reader
	closed bool
}

func runVector(t *testing.T, h host.Host, target peer.ID, maxFrame int, v Vector) {
	streams := map[string]*testStream{}
	defer func() {
		for _, st := range streams {
			_ = st.s.Reset()
		}
	}()
	for i, step := range v.Steps {
		name := step.Stream
		if name == "" {
			name = "a"
		}
		at := fmt.Sprintf("step %d (stream %s: %s)", i+1, name, step.What)
		st := streams[name]
		if st == nil {
			ctx, cancel := context.WithTimeout(context.Background(), stepTimeout)
			s, err := h.NewStream(ctx, target, p2pproto.ID(protocol.ProtocolID))
			cancel()
			if err != nil {
				t.Fatalf("%s: opening a stream: %v", at, err)
			}
			st = &testStream{s: s, br: bufio.NewReader(s)}
			streams[name] = st
		}
		switch {
		case step.Send != "":
			b, err := hex.DecodeString(step.Send)
			if err != nil {
				t.Fatalf("%s: bad hex: %v", at, err)
			}
			_ = st.s.SetWriteDeadline(time.Now().Add(stepTimeout))
			if _, err := st.s.Write(b); err != nil {
				t.Fatalf("%s: writing: %v", at, err)
			}
		case step.Close:
			_ = st.s.CloseWrite()
			st.closed = true
		case step.Expect == "end":
			if !st.closed {
				_ = st.s.CloseWrite()
				st.closed = true
			}
			variant, _, err := readFrame(st, maxFrame)
			if err == nil {
				t.Fatalf("%s: got a %s frame, want the end of the stream", at, variant)
			}
			var se *network.StreamError
			if !errors.Is(err, io.EOF) && !errors.As(err, &se) && !errors.Is(err, network.ErrReset) {
				t.Fatalf("%s: the stream failed with %v, want an end of stream or a reset", at, err)
			}
		case step.Expect != "":
			variant, fields, err := readFrame(st, maxFrame)
			if err != nil {
				t.Fatalf("%s: want a %s frame, the stream ended: %v", at, step.Expect, err)
			}
			if variant != step.Expect {
				t.Fatalf("%s: got a %s frame %v, want %s", at, variant, fields, step.Expect)
			}
			for k, want := range step.Fields {
				if err := match(want, fields[k]); err != nil {
					t.Fatalf("%s: field %s: %v (the frame: %v)", at, k, err, fields)
				}
			}
		default:
			t.Fatalf("%s: a step that neither sends, closes nor expects", at)
		}
	}
}

// readFrame reads the next frame that is not a Heartbeat or an
// AckSharedChanges (those come whenever they are due) and returns its variant
// and fields. A compressed frame is decompressed.
func readFrame(st *testStream, maxFrame int) (string, map[string]any, error) {
	for {
		_ = st.s.SetReadDeadline(time.Now().Add(stepTimeout))
		b, err := protocol.ReadFrame(st.br, maxFrame)
		if err != nil {
			return "", nil, err
		}
		if len(b) > 0 && b[0] == 0x01 {
			if b, err = s2.Decode(nil, b[1:]); err != nil {
				return "", nil, fmt.Errorf("a compressed frame that does not decompress: %w", err)
			}
		}
		var env map[string]map[string]any
		if err := cbor.Unmarshal(b, &env); err != nil || len(env) != 1 {
			return "", nil, fmt.Errorf("the node sent a frame that is not one message (%v): %x", err, b)
		}
		for variant, fields := range env {
			if variant == "Heartbeat" || variant == "AckSharedChanges" {
				break
			}
			return variant, fields, nil
		}
	}
}

// match compares a value of the vector file with a decoded CBOR value: a
// number with an unsigned integer, "h'…'" with a byte string, another string
// with a text string, a bool with a bool, an array element by element, and
// {"count": n} with an array of n elements.
func match(want, got any) error {
	switch w := want.(type) {
	case json.Number:
		g, ok := got.(uint64)
		if !ok || w.String() != fmt.Sprint(g) {
			return fmt.Errorf("got %v, want %s", got, w)
		}
	case bool:
		if g, ok := got.(bool); !ok || g != w {
			return fmt.Errorf("got %v, want %v", got, w)
		}
	case string:
		if strings.HasPrefix(w, "h'") && strings.HasSuffix(w, "'") {
			g, ok := got.([]byte)
			if !ok || hex.EncodeToString(g) != w[2:len(w)-1] {
				return fmt.Errorf("got %v, want %s", got, w)
			}
			return nil
		}
		if g, ok := got.(string); !ok || g != w {
			return fmt.Errorf("got %v, want %q", got, w)
		}
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return fmt.Errorf("got %v, want %v", got, w)
		}
		for i := range w {
			if err := match(w[i], g[i]); err != nil {
				return fmt.Errorf("[%d]: %w", i, err)
			}
		}
	case map[string]any:
		n, ok := w["count"]
		if !ok || len(w) != 1 {
			return fmt.Errorf("the file compares an object %v, which is not {\"count\": n}", w)
		}
		g, ok := got.([]any)
		if !ok || fmt.Sprint(len(g)) != fmt.Sprint(n) {
			return fmt.Errorf("got %v, want an array of %v elements", got, n)
		}
	default:
		return fmt.Errorf("the file compares a %T, which it cannot", want)
	}
	return nil
}

// conformanceRegistry is syncnode's default model types and, for the vectors
// that require shared-fields, note as a shared-fields type (the file's setup).
func conformanceRegistry(t *testing.T) *engine.Registry {
	t.Helper()
	def := engine.DefaultRegistry()
	var types []engine.ModelType
	for _, name := range def.Ordered(0) {
		mt, err := def.Lookup(name)
		if err != nil {
			t.Fatal(err)
		}
		types = append(types, mt)
	}
	types = append(types, engine.ModelType{Name: "note", Strategy: engine.SharedFields})
	r, err := engine.NewRegistry(types...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
